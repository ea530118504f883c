package pki

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// SubjectHash returns OpenSSL's subject hash of a DER-encoded Name (a
// certificate's RawSubject), as `openssl x509 -hash` prints it and as
// OpenSSL looks certificates up in a -CApath directory (<hash>.0 links,
// what `openssl rehash` makes). Trust directories such as the one the Mesos
// agent reads are keyed by it, so it must match OpenSSL bit for bit: it is
// the first four bytes, little-endian, of the SHA-1 of the Name's canonical
// encoding (x509_name_canon in OpenSSL's crypto/x509/x_name.c).
func SubjectHash(rawName []byte) (string, error) {
	canon, err := canonicalName(rawName)
	if err != nil {
		return "", fmt.Errorf("subject hash: %w", err)
	}
	sum := sha1.Sum(canon)
	return fmt.Sprintf("%08x", binary.LittleEndian.Uint32(sum[:4])), nil
}

// canonicalName is OpenSSL's canonical Name encoding: each RDN re-encoded
// as a DER SET OF (sorted) with string values canonicalised, the RDNs
// concatenated without the outer SEQUENCE header. An empty Name encodes
// to nothing.
func canonicalName(raw []byte) ([]byte, error) {
	in := cryptobyte.String(raw)
	var rdns cryptobyte.String
	if !in.ReadASN1(&rdns, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("not a DER Name")
	}
	var out []byte
	for !rdns.Empty() {
		var set cryptobyte.String
		if !rdns.ReadASN1(&set, cbasn1.SET) {
			return nil, errors.New("malformed RelativeDistinguishedName")
		}
		var atvs [][]byte
		for !set.Empty() {
			var atv, oid, value cryptobyte.String
			var tag cbasn1.Tag
			if !set.ReadASN1(&atv, cbasn1.SEQUENCE) || !atv.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) ||
				!atv.ReadAnyASN1Element(&value, &tag) || !atv.Empty() {
				return nil, errors.New("malformed AttributeTypeAndValue")
			}
			v, err := canonicalValue(value, tag)
			if err != nil {
				return nil, err
			}
			var b cryptobyte.Builder
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(oid)
				b.AddBytes(v)
			})
			atvs = append(atvs, b.BytesOrPanic())
		}
		// DER orders a SET OF by the elements' encodings.
		slices.SortFunc(atvs, bytes.Compare)
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			for _, a := range atvs {
				b.AddBytes(a)
			}
		})
		out = append(out, b.BytesOrPanic()...)
	}
	return out, nil
}

// ASN.1 string tags OpenSSL canonicalises (ASN1_MASK_CANON); any other
// value, NumericString included, is copied unchanged.
const (
	tagUTF8      = 12
	tagPrintable = 19
	tagT61       = 20
	tagIA5       = 22
	tagVisible   = 26
	tagUniversal = 28
	tagBMP       = 30
)

// canonicalValue converts a string value to UTF-8, drops leading and
// trailing ASCII whitespace, collapses inner runs of it to one space and
// lower-cases ASCII letters (bytes of multi-byte characters are kept), and
// encodes the result as a UTF8String.
func canonicalValue(elem cryptobyte.String, tag cbasn1.Tag) ([]byte, error) {
	var content cryptobyte.String
	if e := elem; !e.ReadASN1(&content, tag) {
		return nil, errors.New("malformed attribute value")
	}
	var s []byte
	switch tag {
	case tagUTF8:
		if !utf8.Valid(content) {
			return nil, errors.New("UTF8String value is not valid UTF-8")
		}
		s = content
	case tagPrintable, tagT61, tagIA5, tagVisible:
		// OpenSSL reads these one byte per character (Latin-1).
		for _, c := range content {
			s = utf8.AppendRune(s, rune(c))
		}
	case tagBMP:
		if len(content)%2 != 0 {
			return nil, errors.New("BMPString value has an odd length")
		}
		u := make([]uint16, len(content)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(content[2*i:])
		}
		for _, r := range utf16.Decode(u) {
			s = utf8.AppendRune(s, r)
		}
	case tagUniversal:
		if len(content)%4 != 0 {
			return nil, errors.New("UniversalString value has a length not a multiple of 4")
		}
		for i := 0; i < len(content); i += 4 {
			r := rune(binary.BigEndian.Uint32(content[i:]))
			if !utf8.ValidRune(r) {
				return nil, fmt.Errorf("UniversalString holds invalid code point %#x", r)
			}
			s = utf8.AppendRune(s, r)
		}
	default:
		return elem, nil
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(tagUTF8), func(b *cryptobyte.Builder) { b.AddBytes(canonicalText(s)) })
	return b.BytesOrPanic(), nil
}

// isSpace is OpenSSL's ossl_isspace: ASCII only.
func isSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

func canonicalText(s []byte) []byte {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= 0x80:
			out = append(out, c)
			i++
		case isSpace(c):
			out = append(out, ' ')
			for i < len(s) && isSpace(s[i]) {
				i++
			}
		default:
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			out = append(out, c)
			i++
		}
	}
	return out
}
