package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
)

//go:embed assets/index.html assets/app.js assets/style.css assets/favicon.svg
var assets embed.FS

// Config configures [Handler].
type Config struct {
	// Status returns the engine's status as JSON, as the admin API's status
	// GET answers it without a token (redacted): the page is rendered from
	// it and must never show more. Required.
	Status func() ([]byte, error)
	// Title is the page's title. Default "canary console".
	Title string
}

// files are the console's static files, by the name after …/ui/.
var files = map[string]string{
	"app.js":      "text/javascript; charset=utf-8",
	"style.css":   "text/css; charset=utf-8",
	"favicon.svg": "image/svg+xml",
}

// ContentSecurityPolicy is the policy of every answer of the console: only
// its own script and style (no inline script), requests only to its own
// origin (the admin API), never framed.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Owns reports whether path (a URL path under the admin handler's mount)
// is the console's: it ends in "/ui", "/ui/" or "/ui/<file>" for one of the
// console's files. The admin handler sends those to [Handler].
func Owns(path string) bool {
	if strings.HasSuffix(path, "/ui") {
		return true
	}
	i := strings.LastIndex(path, "/ui/")
	if i < 0 {
		return false
	}
	name := path[i+len("/ui/"):]
	_, ok := files[name]
	return name == "" || ok
}

// Handler returns the console's http.Handler. It answers the paths [Owns]
// accepts, wherever the admin handler is mounted: …/ui redirects to …/ui/,
// …/ui/ is the page (rendered from Config.Status), …/ui/app.js, style.css
// and favicon.svg are the embedded files. Only GET and HEAD are served (405
// otherwise): nothing changes state here. Every answer carries
// [ContentSecurityPolicy], X-Frame-Options DENY, nosniff, no-referrer and
// Cache-Control no-store. A nil Config.Status gives a handler whose page
// answers 500 naming it. Safe for concurrent use.
func Handler(cfg Config) http.Handler {
	if cfg.Title == "" {
		cfg.Title = "canary console"
	}
	return &handler{cfg: cfg}
}

type handler struct {
	cfg Config
}

var _ http.Handler = (*handler)(nil)

var page = template.Must(template.New("index.html").Funcs(template.FuncMap{
	"pct":  func(f float64) string { return fmt.Sprintf("%.2f%%", f*100) },
	"ms":   func(f float64) string { return fmt.Sprintf("%.1f ms", f) },
	"join": strings.Join,
}).ParseFS(assets, "assets/index.html"))

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on the console; it only reads (actions go to the admin API)")
		return
	}
	p := r.URL.Path
	if strings.HasSuffix(p, "/ui") {
		// Relative, so that it works under any prefix and http.StripPrefix
		// (http.Redirect would make it absolute from the stripped path).
		hd.Set("Location", "ui/")
		w.WriteHeader(http.StatusFound)
		return
	}
	name := ""
	if i := strings.LastIndex(p, "/ui/"); i >= 0 {
		name = p[i+len("/ui/"):]
	}
	if name == "" {
		h.servePage(w, r)
		return
	}
	ctype, ok := files[name]
	if !ok {
		httpError(w, http.StatusNotFound, "no console file "+name)
		return
	}
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "console: reading "+name+": "+err.Error())
		return
	}
	hd.Set("Content-Type", ctype)
	_, _ = w.Write(b)
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Status == nil {
		httpError(w, http.StatusInternalServerError, "console.Config.Status is nil")
		return
	}
	raw, err := h.cfg.Status()
	if err != nil {
		httpError(w, http.StatusInternalServerError, "console: reading the status: "+err.Error())
		return
	}
	var st status
	if err := json.Unmarshal(raw, &st); err != nil {
		httpError(w, http.StatusInternalServerError, "console: decoding the status: "+err.Error())
		return
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, pageData{Title: h.cfg.Title, S: st}); err != nil {
		httpError(w, http.StatusInternalServerError, "console: rendering the page: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(buf.Bytes())
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}
