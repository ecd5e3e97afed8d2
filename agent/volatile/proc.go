//go:build linux

package volatile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is what /proc shows of one process.
type Process struct {
	PID  int `json:"pid"`
	PPID int `json:"ppid"`
	// UID and GID are the real ids, EUID and EGID the effective ones
	// (the Uid: and Gid: lines of /proc/PID/status).
	UID  uint32 `json:"uid"`
	EUID uint32 `json:"euid"`
	GID  uint32 `json:"gid"`
	EGID uint32 `json:"egid"`
	// State is the one-letter state of /proc/PID/stat (R, S, D, Z, T…).
	State string `json:"state"`
	// StartTicks is the start time in clock ticks since boot; Start is the
	// same as a wall-clock time, good to about a second (see the package
	// documentation).
	StartTicks uint64    `json:"startTicks"`
	Start      time.Time `json:"start"`
	// Comm is the kernel's name of the process (at most 15 bytes), which
	// the process itself can change.
	Comm string `json:"comm"`
	// Cmdline is the process's argv as it now stands in its memory (a
	// process can rewrite it). SENSITIVE: secrets passed on a command line
	// show here; use Redacted before showing it to anyone who must not
	// see them. CmdlineTruncated is set when it was longer than the bound.
	Cmdline          []string `json:"cmdline"`
	CmdlineTruncated bool     `json:"cmdlineTruncated,omitempty"`
	// Exe is the link target of /proc/PID/exe, with the kernel's
	// " (deleted)" suffix when the file was unlinked. ExeDeleted is read
	// from the file itself (no links left), so a file merely named
	// "x (deleted)" does not fool it.
	Exe        string `json:"exe"`
	ExeDeleted bool   `json:"exeDeleted"`
	// ExeSHA256 is the hex SHA-256 of the whole executable, read through
	// /proc/PID/exe (so it works for a deleted one); empty when the file
	// is larger than the bound (ExeTooLarge) or could not be read.
	ExeSHA256   string `json:"exeSHA256,omitempty"`
	ExeSize     int64  `json:"exeSize"`
	ExeTooLarge bool   `json:"exeTooLarge,omitempty"`
	// ExeDevice and ExeInode name the executable's file (for a deleted
	// one, the inode it had), as fstat on /proc/PID/exe reports them.
	ExeDevice uint64 `json:"exeDevice,omitempty"`
	ExeInode  uint64 `json:"exeInode,omitempty"`
	Cwd       string `json:"cwd"`
	// FDs are the open file descriptors by number; FDsTruncated is set
	// when there were more than the bound.
	FDs          []FD `json:"fds"`
	FDsTruncated bool `json:"fdsTruncated,omitempty"`
	// Errors names each field that could not be read, and why (without
	// CAP_SYS_PTRACE: exe, cwd and fd of other users' processes).
	Errors []string `json:"errors,omitempty"`
}

// FD is one open file descriptor and what it refers to, as
// /proc/PID/fd/N links it: a path, "socket:[INODE]", "pipe:[INODE]",
// "anon_inode:[eventfd]"…
type FD struct {
	Num    int    `json:"fd"`
	Target string `json:"target"`
}

// SocketInode returns the inode of a socket descriptor ("socket:[INODE]").
func (f FD) SocketInode() (uint32, bool) {
	s, ok := strings.CutPrefix(f.Target, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
	return uint32(n), err == nil
}

// Redacted returns a copy of p whose command line keeps only argv[0]; each
// other argument becomes "[redacted]".
func (p Process) Redacted() Process {
	if len(p.Cmdline) > 1 {
		c := make([]string, len(p.Cmdline))
		c[0] = p.Cmdline[0]
		for i := 1; i < len(c); i++ {
			c[i] = "[redacted]"
		}
		p.Cmdline = c
	}
	p.FDs = slices.Clone(p.FDs)
	p.Errors = slices.Clone(p.Errors)
	return p
}

// Defaults of Options.
const (
	DefaultMaxHashBytes    = 256 << 20
	DefaultMaxCmdlineBytes = 64 << 10
	DefaultMaxFDs          = 4096
	// The bounds of a whole scan: a pod that forks thousands of processes,
	// each holding thousands of descriptors, must not exhaust the agent's
	// memory (and so stop its cut).
	DefaultMaxProcesses         = 4096
	DefaultMaxTotalFDs          = 1 << 16
	DefaultMaxTotalCmdlineBytes = 8 << 20
)

// minCmdlineBytes is what is read of a command line once the scan's
// budget is spent: its first argument, mostly.
const minCmdlineBytes = 256

// ErrTooManyProcesses: the scan stopped at Options.MaxProcesses; the
// processes listed so far are returned with it.
var ErrTooManyProcesses = errors.New("more processes than the bound: the rest were not read")

// Options bound what one process may cost to read: the target is the
// attacker's, and may be built to exhaust its reader. Zero means the
// default.
type Options struct {
	// MaxHashBytes bounds the size of an executable that is hashed.
	MaxHashBytes int64
	// MaxCmdlineBytes bounds the command line read.
	MaxCmdlineBytes int64
	// MaxFDs bounds the descriptors listed per process.
	MaxFDs int
	// MaxProcesses bounds the processes read; MaxTotalFDs and
	// MaxTotalCmdlineBytes bound the descriptors and command-line bytes
	// kept over the whole scan (past them, each process keeps none, and
	// the first bytes of its command line, marked truncated).
	MaxProcesses         int
	MaxTotalFDs          int
	MaxTotalCmdlineBytes int64
}

func (o Options) withDefaults() Options {
	if o.MaxHashBytes <= 0 {
		o.MaxHashBytes = DefaultMaxHashBytes
	}
	if o.MaxCmdlineBytes <= 0 {
		o.MaxCmdlineBytes = DefaultMaxCmdlineBytes
	}
	if o.MaxFDs <= 0 {
		o.MaxFDs = DefaultMaxFDs
	}
	if o.MaxProcesses <= 0 {
		o.MaxProcesses = DefaultMaxProcesses
	}
	if o.MaxTotalFDs <= 0 {
		o.MaxTotalFDs = DefaultMaxTotalFDs
	}
	if o.MaxTotalCmdlineBytes <= 0 {
		o.MaxTotalCmdlineBytes = DefaultMaxTotalCmdlineBytes
	}
	return o
}

// Processes lists, sorted by PID, the processes under procRoot (the host's
// /proc) whose /proc/PID/cgroup contents match, such as [MatchPod]'s. It
// fails only if procRoot itself cannot be read or ctx ends; what cannot be
// read of one process is in its Errors, and a process that exits during
// the scan is left out. Past Options.MaxProcesses it stops and returns
// those it read with ErrTooManyProcesses.
func Processes(ctx context.Context, procRoot string, match func(cgroup []byte) bool, opts Options) ([]Process, error) {
	if match == nil {
		return nil, errors.New("listing processes: no cgroup match given")
	}
	return scan(ctx, procRoot, func(_ int, cg []byte) bool { return match(cg) }, opts)
}

func scan(ctx context.Context, procRoot string, keep func(pid int, cgroup []byte) bool, opts Options) ([]Process, error) {
	opts = opts.withDefaults()
	clk, err := newClock(procRoot)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("listing processes in %s: %w", procRoot, err)
	}
	r := reader{opts: opts, clk: clk, hashes: map[fileKey]exeHash{}, fdsLeft: opts.MaxTotalFDs, cmdlineLeft: opts.MaxTotalCmdlineBytes}
	var procs []Process
	var tooMany error
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("listing processes in %s: %w", procRoot, err)
		}
		dir := filepath.Join(procRoot, e.Name())
		cg, err := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err != nil || !keep(pid, cg) {
			continue
		}
		if len(procs) == opts.MaxProcesses {
			tooMany = fmt.Errorf("%w (%d)", ErrTooManyProcesses, opts.MaxProcesses)
			break
		}
		if p, ok := r.read(ctx, dir, pid); ok {
			procs = append(procs, p)
		}
	}
	slices.SortFunc(procs, func(a, b Process) int { return a.PID - b.PID })
	return procs, tooMany
}

type reader struct {
	opts   Options
	clk    clock
	hashes map[fileKey]exeHash
	// What is left of the scan's budgets.
	fdsLeft     int
	cmdlineLeft int64
}

// read reads one process; false means it is gone, or its PID now names
// another process.
func (r *reader) read(ctx context.Context, dir string, pid int) (Process, bool) {
	p := Process{PID: pid}
	st, err := readStat(dir)
	if err != nil {
		return p, false
	}
	p.PPID, p.State, p.Comm, p.StartTicks = st.ppid, st.state, st.comm, st.start
	p.Start = r.clk.wall(st.start)
	fail := func(what string, err error) {
		p.Errors = append(p.Errors, fmt.Sprintf("%s: %v", what, err))
	}
	if err := readIDs(dir, &p); err != nil {
		fail("status", err)
	}
	if p.Cmdline, p.CmdlineTruncated, err = readCmdline(dir, min(r.opts.MaxCmdlineBytes, max(minCmdlineBytes, r.cmdlineLeft))); err != nil {
		fail("cmdline", err)
	}
	for _, a := range p.Cmdline {
		r.cmdlineLeft -= int64(len(a)) + 1
	}
	r.exe(ctx, dir, &p, fail)
	if p.Cwd, err = os.Readlink(filepath.Join(dir, "cwd")); err != nil {
		fail("cwd", err)
	}
	if p.FDs, p.FDsTruncated, err = readFDs(dir, min(r.opts.MaxFDs, max(0, r.fdsLeft))); err != nil {
		fail("fd", err)
	}
	r.fdsLeft -= len(p.FDs)
	again, err := readStat(dir)
	if err != nil || again.start != st.start {
		return p, false
	}
	return p, true
}

func (r *reader) exe(ctx context.Context, dir string, p *Process, fail func(string, error)) {
	link, err := os.Readlink(filepath.Join(dir, "exe"))
	if err != nil {
		if p.State != "Z" && !errors.Is(err, os.ErrNotExist) {
			fail("exe", err) // a kernel thread or a zombie has none
		}
		return
	}
	p.Exe = link
	h, err := r.hashExe(ctx, filepath.Join(dir, "exe"))
	if err != nil {
		fail("exe hash", err)
		p.ExeDeleted = strings.HasSuffix(link, " (deleted)")
		return
	}
	p.ExeDeleted, p.ExeSize, p.ExeTooLarge, p.ExeSHA256 = h.deleted, h.size, h.tooLarge, h.sum
	p.ExeDevice, p.ExeInode = h.dev, h.ino
}

type stat struct {
	ppid  int
	state string
	comm  string
	start uint64
}

// readStat parses /proc/PID/stat. The command, in parentheses, may hold
// spaces and parentheses: the fields are counted after the last ")".
func readStat(dir string) (stat, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (stat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return stat{}, errors.New("stat: no command in parentheses")
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return stat{}, fmt.Errorf("stat: %d fields after the command, want at least 20", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return stat{}, fmt.Errorf("stat: ppid: %w", err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("stat: starttime: %w", err)
	}
	return stat{ppid: ppid, state: f[0], comm: string(b[open+1 : end]), start: start}, nil
}

// readIDs reads the real and effective ids from /proc/PID/status.
func readIDs(dir string, p *Process) error {
	b, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return err
	}
	return parseIDs(b, p)
}

func parseIDs(b []byte, p *Process) error {
	found := 0
	for line := range strings.Lines(string(b)) {
		key, rest, _ := strings.Cut(line, ":")
		if key != "Uid" && key != "Gid" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return fmt.Errorf("status: %s: %d fields, want at least 2", key, len(f))
		}
		real, err1 := strconv.ParseUint(f[0], 10, 32)
		eff, err2 := strconv.ParseUint(f[1], 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("status: %s: %w", key, err)
		}
		if key == "Uid" {
			p.UID, p.EUID = uint32(real), uint32(eff)
		} else {
			p.GID, p.EGID = uint32(real), uint32(eff)
		}
		found++
	}
	if found != 2 {
		return errors.New("status: no Uid: or Gid: line")
	}
	return nil
}

// readCmdline reads argv, NUL-separated, at most max bytes of it.
func readCmdline(dir string, max int64) ([]string, bool, error) {
	f, err := os.Open(filepath.Join(dir, "cmdline"))
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, false, err
	}
	truncated := int64(len(b)) > max
	if truncated {
		b = b[:max]
	}
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, truncated, nil // a kernel thread, or a zombie
	}
	return strings.Split(string(b), "\x00"), truncated, nil
}

// readFDs lists the process's descriptors, at most max of them. A
// descriptor closed while it is read is left out.
func readFDs(dir string, max int) ([]FD, bool, error) {
	d, err := os.Open(filepath.Join(dir, "fd"))
	if err != nil {
		return nil, false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(max + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	truncated := len(names) > max
	if truncated {
		names = names[:max]
	}
	fds := []FD{}
	for _, n := range names {
		num, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, "fd", n))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT) {
				continue
			}
			return nil, false, err
		}
		fds = append(fds, FD{Num: num, Target: target})
	}
	slices.SortFunc(fds, func(a, b FD) int { return a.Num - b.Num })
	return fds, truncated, nil
}
