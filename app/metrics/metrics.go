// Package metrics exposes both processes' Prometheus metrics: requests by
// route pattern (web), tasks by type and outcome and sends by outcome
// (worker), and the Asynq queues' sizes (both, through asynq's x/metrics
// collector).
package metrics

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is one process's metrics.
type Registry struct {
	reg *prometheus.Registry
}

// New returns a registry with the Go runtime's and the process's metrics,
// and the queues' when inspector is not nil.
func New(inspector *asynq.Inspector) *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if inspector != nil {
		reg.MustRegister(asynqmetrics.NewQueueMetricsCollector(inspector))
	}
	return &Registry{reg: reg}
}

// Handler serves the exposition format; with a token, only to requests
// that carry it as "Authorization: Bearer <token>".
func (r *Registry) Handler(token string) http.Handler {
	h := promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "a metrics token is required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, req)
	})
}

// Serve serves /metrics on addr until ctx ends (the worker, which has no
// web server of its own). An address it cannot listen on (taken by the
// worker this one replaces, still stopping) is tried again, a second and
// then up to a minute apart, each time with a warning in log: metrics are
// not worth stopping the sending for.
func (r *Registry) Serve(ctx context.Context, addr, token string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", r.Handler(token))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "addr", addr, "error", err.Error())
			}
			return
		}
		log.Warn("metrics server cannot listen; trying again", "addr", addr, "in", wait.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// HTTP counts the web's requests and their latencies by route pattern
// (/clients/:id, never the id itself, so the series stay few).
func (r *Registry) HTTP() fiber.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rassylka_http_requests_total",
		Help: "HTTP requests by method, route pattern and status code.",
	}, []string{"method", "route", "status"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rassylka_http_request_duration_seconds",
		Help:    "HTTP request latency by method and route pattern.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"method", "route"})
	r.reg.MustRegister(requests, latency)
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		// After the handlers ran, Route is the last route matched: a
		// handler's pattern, or the middlewares' "/" when none matched.
		route := strings.Clone(c.Route().Path)
		if route == "/" && c.Path() != "/" {
			route = "unmatched"
		}
		status := c.Response().StatusCode()
		if err != nil {
			status = fiber.StatusInternalServerError
			if fe, ok := err.(*fiber.Error); ok {
				status = fe.Code
			}
		}
		method := strings.Clone(c.Method())
		requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
		latency.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
		return err
	}
}

// Tasks counts the worker's tasks by type and outcome and times them.
func (r *Registry) Tasks() asynq.MiddlewareFunc {
	done := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rassylka_tasks_total",
		Help: "Tasks handled by type and outcome (ok, error).",
	}, []string{"type", "outcome"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rassylka_task_duration_seconds",
		Help:    "Task handling time by type.",
		Buckets: prometheus.ExponentialBuckets(0.005, 4, 9), // 5 ms … 5.5 min
	}, []string{"type"})
	r.reg.MustRegister(done, latency)
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			done.WithLabelValues(t.Type(), outcome).Inc()
			latency.WithLabelValues(t.Type()).Observe(time.Since(start).Seconds())
			return err
		})
	}
}

// Sends counts mails sent by outcome.
type Sends struct {
	v *prometheus.CounterVec
}

// Sends registers the sends counter.
func (r *Registry) Sends() *Sends {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rassylka_sends_total",
		Help: "Mails sent by outcome (success, failure, bounce: a failure that marked the address as not existing).",
	}, []string{"outcome"})
	r.reg.MustRegister(v)
	return &Sends{v: v}
}

// Add counts n sends of an outcome; a nil Sends, or n ≤ 0, counts nothing.
func (s *Sends) Add(outcome string, n int) {
	if s == nil || n <= 0 {
		return
	}
	s.v.WithLabelValues(outcome).Add(float64(n))
}
