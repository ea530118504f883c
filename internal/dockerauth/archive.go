package dockerauth

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// ArchiveConfigPath is where the Docker containerizer looks for the
// credentials once Mesos has unpacked docker.tar.gz into the sandbox.
const ArchiveConfigPath = ".docker/config.json"

// MaxConfigSize bounds what ReadTarGz unpacks: a credentials file is a few
// kilobytes, an archive inflating past this is not one.
const MaxConfigSize = 1 << 20

// archiveTime is every entry's mtime: a fixed value keeps the archive's
// bytes (and hash) the same for the same config. Not the epoch, which GNU
// tar reports as implausibly old.
var archiveTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// TarGz packs configJSON as .docker/config.json (0600, in .docker/ 0700,
// owned by uid/gid 0): the docker.tar.gz DC/OS documents. The same input
// always gives the same bytes.
func TarGz(configJSON []byte) ([]byte, error) {
	if err := object(configJSON, "the config to archive"); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	// The zero gzip header has no name, no mtime and OS "unknown".
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: path.Dir(ArchiveConfigPath) + "/", Mode: 0o700},
		{Typeflag: tar.TypeReg, Name: ArchiveConfigPath, Mode: 0o600, Size: int64(len(configJSON))},
	}
	for _, h := range hdrs {
		h.ModTime, h.Format = archiveTime, tar.FormatUSTAR
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write %s into docker.tar.gz: %w", h.Name, err)
		}
	}
	if _, err := tw.Write(configJSON); err != nil {
		return nil, fmt.Errorf("write %s into docker.tar.gz: %w", ArchiveConfigPath, err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close docker.tar.gz: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("close docker.tar.gz: %w", err)
	}
	return buf.Bytes(), nil
}

// ReadTarGz returns the .docker/config.json an existing docker.tar.gz holds
// (also when named ./.docker/config.json), so its other entries can be
// merged into the next one. An archive without exactly one such regular
// file is an error.
func ReadTarGz(archive []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("docker.tar.gz is not gzip: %w", err)
	}
	tr := tar.NewReader(io.LimitReader(zr, 16*MaxConfigSize))
	var found []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("docker.tar.gz is not a tar archive: %w", err)
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) != ArchiveConfigPath {
			continue
		}
		switch {
		case h.Typeflag != tar.TypeReg:
			return nil, fmt.Errorf("docker.tar.gz: %s is not a regular file", ArchiveConfigPath)
		case found != nil:
			return nil, fmt.Errorf("docker.tar.gz holds %s twice", ArchiveConfigPath)
		case h.Size > MaxConfigSize:
			return nil, fmt.Errorf("docker.tar.gz: %s is %d bytes, more than a credentials file (limit %d)",
				ArchiveConfigPath, h.Size, MaxConfigSize)
		}
		if found, err = io.ReadAll(tr); err != nil {
			return nil, fmt.Errorf("docker.tar.gz: read %s: %w", ArchiveConfigPath, err)
		}
	}
	if found == nil {
		return nil, fmt.Errorf("docker.tar.gz holds no %s", ArchiveConfigPath)
	}
	return found, nil
}
