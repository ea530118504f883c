package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// atv is one attribute of a hand-built Name: a type, an ASN.1 string tag
// and the value's content bytes exactly as they go on the wire.
type atv struct {
	oid asn1.ObjectIdentifier
	tag int
	val []byte
}

var (
	oidCN     = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidO      = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU     = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidC      = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidSerial = asn1.ObjectIdentifier{2, 5, 4, 5}
	oidEmail  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

func bmp(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u>>8), byte(u))
	}
	return b
}

func universal(s string) []byte {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r>>24), byte(r>>16), byte(r>>8), byte(r))
	}
	return b
}

// rawName encodes RDNs in the order given (a multi-valued RDN's members in
// the order listed, which need not be DER order: OpenSSL re-sorts them).
func rawName(t *testing.T, rdns ...[]atv) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, rdn := range rdns {
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				for _, a := range rdn {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(a.oid)
						b.AddASN1(cbasn1.Tag(a.tag), func(b *cryptobyte.Builder) { b.AddBytes(a.val) })
					})
				}
			})
		}
	})
	return b.BytesOrPanic()
}

// opensslHash asks the real openssl for the subject hash of a certificate
// whose subject is raw.
func opensslHash(t *testing.T, raw []byte) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), RawSubject: raw, NotBefore: time.Now(),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("openssl", "x509", "-hash", "-noout")
	cmd.Stdin = strings.NewReader(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509 -hash: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestSubjectHashMatchesOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is needed to check the subject hash (Debian package openssl): %v", err)
	}
	p := func(s string) []byte { return []byte(s) }
	cases := map[string][][]atv{
		"empty name":    nil,
		"plain CN":      {{{oidCN, tagUTF8, p("registry-operator CA")}}},
		"mixed case":    {{{oidC, tagPrintable, p("DE")}}, {{oidO, tagPrintable, p("ACME Corp")}}, {{oidCN, tagUTF8, p("Registry Operator CA 2030")}}},
		"case variant":  {{{oidC, tagPrintable, p("de")}}, {{oidO, tagUTF8, p("acme corp")}}, {{oidCN, tagUTF8, p("registry operator ca 2030")}}},
		"whitespace":    {{{oidO, tagPrintable, p("  ACME    Corp ")}}, {{oidCN, tagUTF8, p("\tRegistry \t\n Operator\r\nCA  ")}}},
		"non-ASCII":     {{{oidO, tagUTF8, p("Zürich Ünïcode GmbH")}}, {{oidCN, tagUTF8, p("ÄÖÜ Wurzel-CA ÉCOLE")}}},
		"CJK":           {{{oidCN, tagUTF8, p("レジストリ 認証局 CA")}}},
		"multi-valued":  {{{oidOU, tagUTF8, p("Platform")}, {oidCN, tagPrintable, p("Reg CA")}}, {{oidO, tagUTF8, p("X")}}},
		"multi-reorder": {{{oidCN, tagPrintable, p("Reg CA")}, {oidOU, tagUTF8, p("Platform")}, {oidO, tagIA5, p("zz")}}},
		"BMP":           {{{oidCN, tagBMP, bmp("Ärger Ωmega CA")}}},
		"universal":     {{{oidCN, tagUniversal, universal("Ωmega 𝄞 CA")}}},
		"T61 latin1":    {{{oidO, tagT61, []byte{'C', 'a', 'f', 0xE9, ' ', 'A', 'G'}}}},
		"IA5 email":     {{{oidEmail, tagIA5, p("Admin@Example.COM")}}, {{oidCN, tagIA5, p("IA5  CA")}}},
		"numeric kept":  {{{oidSerial, 18, p("0042 17")}}, {{oidCN, tagUTF8, p("N")}}},
	}
	seen := map[string]string{}
	for name, rdns := range cases {
		t.Run(name, func(t *testing.T) {
			raw := rawName(t, rdns...)
			got, err := SubjectHash(raw)
			if err != nil {
				t.Fatal(err)
			}
			if want := opensslHash(t, raw); got != want {
				t.Errorf("SubjectHash = %s, openssl says %s", got, want)
			}
			seen[name] = got
		})
	}
	// Canonical form folds ASCII case: these two differ only in case and
	// string type, so they must hash alike (and openssl agreed above).
	if seen["mixed case"] != seen["case variant"] {
		t.Errorf("case variants hash differently: %s vs %s", seen["mixed case"], seen["case variant"])
	}
	if seen["plain CN"] == seen["non-ASCII"] {
		t.Error("different names hash alike")
	}
}

func TestSubjectHashRejectsGarbage(t *testing.T) {
	for _, raw := range [][]byte{nil, {0x30, 0x05, 0x31}, {0x04, 0x00}} {
		if h, err := SubjectHash(raw); err == nil {
			t.Errorf("SubjectHash(%x) = %s, want an error", raw, h)
		}
	}
}
