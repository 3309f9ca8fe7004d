package main

import (
	"errors"
	"flag"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"rassylka/app/mail/mailsink"
)

// mailCatcher accepts every mail on an SMTP port and shows it on a page,
// with links clickable, so a person can follow confirmation links locally.
func mailCatcher(args []string) error {
	fs := flag.NewFlagSet("mail", flag.ContinueOnError)
	smtpAddr := fs.String("smtp", "127.0.0.1:1025", "SMTP listen address")
	httpAddr := fs.String("http", "127.0.0.1:8025", "web page listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sink, err := mailsink.Start(*smtpAddr)
	if err != nil {
		return err
	}
	defer sink.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		msgs := sink.Messages()
		views := make([]mailView, 0, len(msgs))
		for i := len(msgs) - 1; i >= 0; i-- {
			views = append(views, newMailView(msgs[i]))
		}
		render(w, listPage, views)
	})
	mux.HandleFunc("GET /m/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		m, ok := sink.Message(id)
		if !ok {
			http.NotFound(w, r)
			return
		}
		render(w, showPage, newMailView(m))
	})
	mux.HandleFunc("GET /m/{id}/raw", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		m, ok := sink.Message(id)
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(m.Data)
	})
	mux.HandleFunc("POST /clear", func(w http.ResponseWriter, r *http.Request) {
		sink.Reset()
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	srv := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Printf("mail catcher: SMTP on %s, messages at http://%s/\n", sink.Addr(), *httpAddr)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-sigs:
	}
	return srv.Close()
}

type mailView struct {
	ID      int
	At      string
	From    string
	To      string
	Subject string
	Headers []string
	Body    template.HTML
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)

func newMailView(m mailsink.Received) mailView {
	h := m.Header()
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		subject = h.Get("Subject")
	}
	var headers []string
	for k, vs := range h {
		for _, v := range vs {
			headers = append(headers, k+": "+v)
		}
	}
	body := template.HTMLEscapeString(m.Body())
	body = linkRE.ReplaceAllStringFunc(body, func(u string) string {
		return `<a href="` + u + `">` + u + `</a>`
	})
	return mailView{
		ID: m.ID, At: m.At.Format("15:04:05"), From: m.From, To: strings.Join(m.To, ", "),
		Subject: subject, Headers: headers, Body: template.HTML(body), //nolint:gosec // escaped above
	}
}

func render(w http.ResponseWriter, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := t.Execute(w, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

const pageHead = `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mail catcher · Rassylka</title><style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{width:100%;border-collapse:collapse}td,th{text-align:left;padding:.4rem;border-bottom:1px solid #ddd}
pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem;border-radius:.4rem}a{color:#0b63c5}
</style></head><body><h1><a href="/">Mail catcher</a></h1>`

var listPage = template.Must(template.New("list").Parse(pageHead + `
<form method="post" action="/clear"><button>Clear all</button></form>
{{if not .}}<p>No mail yet. Everything sent to this SMTP server shows up here.</p>{{else}}
<table><thead><tr><th>Time</th><th>To</th><th>Subject</th></tr></thead><tbody>
{{range .}}<tr><td>{{.At}}</td><td>{{.To}}</td><td><a href="/m/{{.ID}}">{{.Subject}}</a></td></tr>{{end}}
</tbody></table>{{end}}</body></html>`))

var showPage = template.Must(template.New("show").Parse(pageHead + `
<h2>{{.Subject}}</h2><p>From {{.From}} to {{.To}} at {{.At}} · <a href="/m/{{.ID}}/raw">raw</a></p>
<pre>{{.Body}}</pre><details><summary>Headers</summary><pre>{{range .Headers}}{{.}}
{{end}}</pre></details></body></html>`))
