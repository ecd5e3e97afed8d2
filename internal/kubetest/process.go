package kubetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// launcher starts processes from one goroutine locked to its OS thread.
//
// Pdeathsig is delivered when the thread that forked the child exits, not
// the process: a child started from an arbitrary goroutine would be killed
// whenever the Go runtime retires that thread. The launcher's thread lives
// until close, which is called once every child is gone; if the test binary
// dies first, the thread dies with it and the kernel kills the children.
type launcher struct {
	reqs chan launchRequest
	once sync.Once
}

type launchRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func newLauncher() *launcher {
	l := &launcher{reqs: make(chan launchRequest)}
	go l.loop()
	return l
}

func (l *launcher) loop() {
	// Never unlocked: when loop returns, the runtime terminates the thread,
	// which sends SIGKILL to any child still alive.
	runtime.LockOSThread()
	for req := range l.reqs {
		req.done <- req.cmd.Start()
	}
}

// start starts cmd from the launcher's thread.
func (l *launcher) start(cmd *exec.Cmd) error {
	req := launchRequest{cmd: cmd, done: make(chan error, 1)}
	l.reqs <- req
	return <-req.done
}

func (l *launcher) close() {
	l.once.Do(func() { close(l.reqs) })
}

// process is one running component.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	mirror  *lineWriter // nil unless Options.Log is set
	done    chan struct{}
	err     error // why it exited; read after done is closed
}

// startProcess starts binary with args in dir, its output going to
// dir/<name>.log and, when mirror is not nil, to mirror too.
func startProcess(l *launcher, dir, name, binary string, args []string, mirror *lockedWriter) (*process, error) {
	logPath := fmt.Sprintf("%s/%s.log", dir, name)
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating log of %s: %w", name, err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	if mirror == nil {
		// An *os.File is handed to the child as is: no copying goroutine.
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		p.mirror = &lineWriter{out: mirror, prefix: "[" + name + "] "}
		w := io.MultiWriter(f, p.mirror)
		cmd.Stdout, cmd.Stderr = w, w
		// Should a grandchild keep the pipe open, Wait must still return.
		cmd.WaitDelay = time.Second
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: Stop signals the whole group, and a ^C in
		// the terminal reaches the test binary only, which then stops it.
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := l.start(cmd); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		if p.mirror != nil {
			p.mirror.flush()
		}
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process group.
func (p *process) signal(sig syscall.Signal) {
	if p.exited() {
		return
	}
	// ESRCH means it is already gone; nothing else can be done about errors.
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// stopProcesses terminates the processes: SIGTERM, then SIGKILL for those still
// running after grace.
func stopProcesses(procs []*process, grace time.Duration) {
	for _, p := range procs {
		p.signal(syscall.SIGTERM)
	}
	expired := make(chan struct{})
	timer := time.AfterFunc(grace, func() { close(expired) })
	defer timer.Stop()
	for _, p := range procs {
		select {
		case <-p.done:
		case <-expired:
		}
		if !p.exited() {
			p.signal(syscall.SIGKILL)
			<-p.done
		}
	}
}

// exitError describes how a process ended.
func (p *process) exitError() error {
	if p.err == nil {
		return errors.New("exited with status 0")
	}
	return p.err
}

// tail returns the last n lines of a file.
func tail(path string, n int) (string, error) {
	const maxRead = 64 << 10
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	offset := max(info.Size()-maxRead, 0)
	buf := make([]byte, info.Size()-offset)
	if _, err := f.ReadAt(buf, offset); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if offset > 0 && len(lines) > 0 {
		lines = lines[1:] // cut mid-line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}

// lockedWriter serialises writes of several processes to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// lineWriter writes whole lines, each with a prefix, so that the output of
// several processes interleaves by line.
type lineWriter struct {
	out    *lockedWriter
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	i := bytes.LastIndexByte(w.buf, '\n')
	if i < 0 {
		return len(b), nil
	}
	var out bytes.Buffer
	for line := range bytes.Lines(w.buf[:i+1]) {
		out.WriteString(w.prefix)
		out.Write(line)
	}
	w.buf = append(w.buf[:0], w.buf[i+1:]...)
	// A failing mirror must not kill the process writing to it: the log
	// file has everything.
	_, _ = w.out.Write(out.Bytes())
	return len(b), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		_, _ = w.out.Write([]byte(w.prefix + string(w.buf) + "\n"))
		w.buf = nil
	}
}
