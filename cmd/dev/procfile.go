package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

type proc struct {
	name, command string
}

// parseProcfile reads "name: command" lines; blank lines and # comments
// are skipped.
func parseProcfile(r io.Reader) ([]proc, error) {
	var procs []proc
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, cmd, ok := strings.Cut(line, ":")
		name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
		if !ok || name == "" || cmd == "" {
			return nil, fmt.Errorf("line %d: want \"name: command\", got %q", n, line)
		}
		procs = append(procs, proc{name, cmd})
	}
	return procs, sc.Err()
}

var colors = []string{"36", "33", "32", "35", "34", "31"}

// runProcfiles runs the "release" process of the Procfiles to completion,
// then every other process at once, prefixing their output with their
// name. When one exits, or on Ctrl-C / SIGTERM, it stops all of them
// (SIGTERM to each process group, SIGKILL after 10 s).
func runProcfiles(files []string) error {
	if len(files) == 0 {
		files = []string{"Procfile"}
	}
	var procs []proc
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		p, err := parseProcfile(fh)
		fh.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		procs = append(procs, p...)
	}
	width := 0
	for _, p := range procs {
		width = max(width, len(p.name))
	}
	out := &lockedWriter{w: os.Stdout}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)

	var long []proc
	for i, p := range procs {
		if p.name != "release" {
			long = append(long, p)
			continue
		}
		cmd := start(p, colors[i%len(colors)], width, out)
		if cmd == nil {
			return errors.New("release could not start")
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("release failed: %w", err)
			}
		case <-sigs:
			stop([]*exec.Cmd{cmd}, done, 1)
			return nil
		}
	}

	var cmds []*exec.Cmd
	exited := make(chan error, len(long))
	for i, p := range long {
		cmd := start(p, colors[(i+1)%len(colors)], width, out)
		if cmd == nil {
			continue
		}
		cmds = append(cmds, cmd)
		go func(p proc, cmd *exec.Cmd) {
			err := cmd.Wait()
			fmt.Fprintf(out, "%-*s | exited: %v\n", width, p.name, exitText(err))
			exited <- err
		}(p, cmd)
	}
	if len(cmds) < len(long) {
		stop(cmds, exited, len(cmds))
		return errors.New("a process could not start")
	}
	remaining := len(cmds)
	var failed error
	select {
	case <-sigs:
		fmt.Fprintln(out, "stopping…")
	case err := <-exited:
		fmt.Fprintln(out, "a process exited; stopping the others…")
		remaining--
		// One process ending on its own (a port in use, a bad setting)
		// is a failed run, whatever its own status: say so in ours.
		failed = fmt.Errorf("a process exited (%s); stopped the others", exitText(err))
	}
	stop(cmds, exited, remaining)
	return failed
}

func start(p proc, color string, width int, out io.Writer) *exec.Cmd {
	cmd := exec.Command("/bin/sh", "-c", "exec "+p.command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	prefix := fmt.Sprintf("\033[%sm%-*s |\033[0m ", color, width, p.name)
	cmd.Stdout = &prefixWriter{prefix: prefix, w: out}
	cmd.Stderr = cmd.Stdout
	cmd.Stdin = nil
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(out, "%s cannot start: %v\n", prefix, err)
		return nil
	}
	fmt.Fprintf(out, "%sstarted: %s (pid %d)\n", prefix, expand(p.command, os.Getenv), cmd.Process.Pid)
	return cmd
}

// expand is command with its variables ($NAME, ${NAME}, ${NAME:-default})
// filled in as the shell that runs it fills them, for the log.
func expand(command string, getenv func(string) string) string {
	return os.Expand(command, func(name string) string {
		name, def, hasDef := strings.Cut(name, ":-")
		if v := getenv(name); v != "" || !hasDef {
			return v
		}
		return def
	})
}

// stop sends SIGTERM to each process group, waits for the remaining exits
// reported on exited, and kills what is left after 10 s.
func stop(cmds []*exec.Cmd, exited <-chan error, remaining int) {
	for _, c := range cmds {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(10 * time.Second)
	for ; remaining > 0; remaining-- {
		select {
		case <-exited:
		case <-deadline:
			for _, c := range cmds {
				_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			}
			return
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// prefixWriter writes each complete line with a prefix.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i]); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
