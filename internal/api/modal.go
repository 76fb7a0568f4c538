package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/dynconn/dynconn/web"
)

// modalCSP confines the demo page and the guide to this server's own
// scripts, styles and API: a page where people paste bearer tokens should
// run nothing else, and nobody should frame it to steal clicks. (The
// component's styles are a constructed stylesheet, which CSP allows.)
const modalCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// staticTypes are the modal's file types. A fixed table, because the
// system's mime.types may name JavaScript otherwise.
var staticTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// staticFile is one of the modal's files, ready to serve.
type staticFile struct {
	body        []byte
	etag        string
	contentType string
}

// modalFiles reads package web once. Each ETag is a hash of the content, so
// it changes exactly when a new build changes the file.
var modalFiles = sync.OnceValue(func() map[string]staticFile {
	files := map[string]staticFile{}
	entries, _ := fs.ReadDir(web.FS, ".") // an embed.FS root always reads
	for _, e := range entries {
		body, _ := fs.ReadFile(web.FS, e.Name())
		sum := sha256.Sum256(body)
		files[e.Name()] = staticFile{
			body:        body,
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
			contentType: staticTypes[path.Ext(e.Name())],
		}
	}
	return files
})

// handleModal serves the modal's files: the demo page at /modal/ and the
// others by name. They hold no account data, so they need no token. They
// are cached with no-cache and an ETag: a browser revalidates every time
// (a 304 of no body) and so picks up a new deployment at once, which a
// max-age could not promise for URLs that carry no version.
func handleModal(logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "file")
		if name == "" {
			name = "index.html"
		}
		f, ok := modalFiles()[name]
		if !ok {
			writeProblem(w, r, logger, newProblem(http.StatusNotFound, typeNotFound, "Not found.", "The modal has no such file."))
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("ETag", f.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		if path.Ext(name) == ".html" {
			h.Set("Content-Security-Policy", modalCSP)
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}
