package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"

	"github.com/registry-operator/registry-operator/internal/nodes"
)

// ownerMarker is left in every directory the operator creates, so that when
// the registry address changes it removes its own directories and nothing
// an administrator made.
const ownerMarker = ".registry-operator"

// wantFile is one file an output keeps on the node.
type wantFile struct {
	name string
	data []byte
}

// certsDirOutput is a runtime that reads <root>/<registry>/...: Docker and
// containers (ca.crt), containerd (ca.crt + hosts.toml).
type certsDirOutput struct {
	roots []string
	files func(dir, name string, w *trustWant) []wantFile
}

func caFile(_, _ string, w *trustWant) []wantFile { return []wantFile{{"ca.crt", w.bundle}} }

// containerdFiles: containerd reads hosts.toml, which names the CA file.
func containerdFiles(dir, name string, w *trustWant) []wantFile {
	hosts := fmt.Sprintf("# Written by registry-operator: trust for the private registry.\n"+
		"server = \"https://%s\"\n\n[host.\"https://%s\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  ca = \"%s\"\n",
		name, name, path.Join(dir, "ca.crt"))
	return []wantFile{{"ca.crt", w.bundle}, {"hosts.toml", []byte(hosts)}}
}

func (d *certsDirOutput) sync(ctx context.Context, c nodes.Conn, w *trustWant, o *outcome) error {
	for _, root := range d.roots {
		// One listing of root says which registry directories exist and
		// which are leftovers to clean up; on a kept connection an
		// unchanged root costs a single stat.
		ents, err := c.ReadDir(ctx, root)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, name := range w.names {
			dir := path.Join(root, name)
			created := !slices.ContainsFunc(ents, func(e nodes.FileInfo) bool { return e.Name == name })
			for _, f := range d.files(dir, name, w) {
				if err := syncFile(ctx, c, path.Join(dir, f.name), f.data, 0o644, o); err != nil {
					return err
				}
			}
			if created {
				marker := []byte("Created by registry-operator for registry " + name + "; it removes this directory when the address changes.\n")
				if err := syncFile(ctx, c, path.Join(dir, ownerMarker), marker, 0o644, o); err != nil {
					return err
				}
			}
		}
		if err := d.cleanup(ctx, c, root, ents, w, o); err != nil {
			return err
		}
	}
	return nil
}

// cleanup removes directories under root (listed in ents) that carry the
// operator's marker and are not for the current address: the files the
// operator wrote, the marker, then the directory if nothing else is left.
func (d *certsDirOutput) cleanup(ctx context.Context, c nodes.Conn, root string, ents []nodes.FileInfo, w *trustWant, o *outcome) error {
	for _, e := range ents {
		if !e.IsDir || slices.Contains(w.names, e.Name) {
			continue
		}
		dir := path.Join(root, e.Name)
		if _, err := c.Stat(ctx, path.Join(dir, ownerMarker)); errors.Is(err, fs.ErrNotExist) {
			continue // not ours
		} else if err != nil {
			return err
		}
		o.changes = append(o.changes, fmt.Sprintf("remove %s (created by registry-operator for a previous registry address)", dir))
		// What stays once the operator's files are gone is read before
		// removing them, so a report-mode pass, which removes nothing,
		// sees the same.
		have, err := c.ReadDir(ctx, dir)
		if err != nil {
			return err
		}
		ours := []string{ownerMarker}
		for _, f := range d.files(dir, e.Name, w) {
			ours = append(ours, f.name)
			if err := c.Remove(ctx, path.Join(dir, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if err := c.Remove(ctx, path.Join(dir, ownerMarker)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		left := slices.DeleteFunc(have, func(f nodes.FileInfo) bool { return slices.Contains(ours, f.Name) })
		if len(left) > 0 {
			o.detail = joinDetail(o.detail, fmt.Sprintf("kept %s: it holds files registry-operator did not write", dir))
			continue
		}
		if err := c.Remove(ctx, dir); err != nil {
			return err
		}
	}
	return nil
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
