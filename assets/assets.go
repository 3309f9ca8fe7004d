// Package assets embeds the static files (vendored htmx and Pico CSS, our
// own CSS and JS) and serves them under fingerprinted names, so that a
// browser may cache each one forever: a changed file gets a new name.
package assets

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Prefix is the URL path under which assets are served.
const Prefix = "/assets/"

// File is one embedded asset.
type File struct {
	Name        string // logical name, e.g. "css/app.css"
	Hashed      string // fingerprinted name, e.g. "css/app.3f2a9c1b.css"
	ContentType string
	Body        []byte
	ETag        string
}

var (
	byLogical = map[string]*File{}
	byHashed  = map[string]*File{}
)

func init() {
	// Fingerprints are computed once from the embedded bytes.
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:])[:12]
		logical := strings.TrimPrefix(p, "static/")
		ext := path.Ext(logical)
		f := &File{
			Name:        logical,
			Hashed:      strings.TrimSuffix(logical, ext) + "." + h + ext,
			ContentType: mime.TypeByExtension(ext),
			Body:        body,
			ETag:        `"` + h + `"`,
		}
		if f.ContentType == "" {
			f.ContentType = "application/octet-stream"
		}
		byLogical[logical] = f
		byHashed[f.Hashed] = f
		return nil
	})
	if err != nil {
		panic("assets: " + err.Error())
	}
}

// Path returns the fingerprinted URL of the asset with the logical name.
// An unknown name panics: it is a typo in a template, caught by any test
// that renders it.
func Path(name string) string {
	f, ok := byLogical[name]
	if !ok {
		panic("assets: unknown asset " + name)
	}
	return Prefix + f.Hashed
}

// Lookup finds an asset by its fingerprinted name (without Prefix).
func Lookup(hashed string) (*File, bool) {
	f, ok := byHashed[hashed]
	return f, ok
}
