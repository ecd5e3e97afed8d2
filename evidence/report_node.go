package evidence

import (
	"cmp"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The kinds of the files the node agent's capture puts in a bundle, under
// pods/<namespace>/<pod>/node/.
const (
	kindNodeCapture = "node-capture"
	kindProcesses   = "processes"
	kindSockets     = "sockets"
	kindExecutable  = "executable"
	kindLayer       = "layer"
	kindLayerIndex  = "layer-index"
)

// maxRows bounds the rows of each table the report shows from a capture:
// the pod is the attacker's, and can hold 100 000 processes, sockets or
// files. What is left out is counted on the page; the bundle holds all.
const maxRows = 500

// maxOwners bounds the processes shown as holding one socket.
const maxOwners = 16

// reportPod is what the node agent captured of one pod, as the page shows
// it: each file kind in its own section, each file that could not be
// read as an error line in its section.
type reportPod struct {
	// Dir is the capture's folder in the bundle (pods/<ns>/<pod>/node).
	Dir            string
	Namespace, Pod string
	Captures       []nodeCapture
	Processes      []procSection
	Sockets        []sockSection
	Layers         []layerSection
}

// nodeCapture is the agent's manifest of a capture (capture.json).
type nodeCapture struct {
	File, Err                 string
	Node, UID, CapturedAt     string
	Notes, Errors             []string
	NotesOmitted, ErrsOmitted int
}

// readNodes reads the node agent's captures among files, grouped by pod
// and sorted by the capture's folder.
func readNodes(dir string, files []File) []reportPod {
	byKind := map[string][]File{}
	held := map[string]map[string]string{} // capture folder → sha256 → path
	tars := map[string]map[string]string{} // capture folder → container → path
	for _, f := range files {
		switch d := captureDir(f.Path); f.Source.Kind {
		case kindExecutable:
			setIn(held, d, f.SHA256, f.Path)
		case kindLayer:
			setIn(tars, d, strings.TrimSuffix(path.Base(f.Path), ".tar"), f.Path)
		default:
			byKind[f.Source.Kind] = append(byKind[f.Source.Kind], f)
		}
	}
	pods := podIndex{}
	for _, f := range byKind[kindNodeCapture] {
		p := pods.of(f)
		p.Captures = append(p.Captures, readCapture(dir, f))
	}
	// Processes before sockets, which name their owners.
	comms := map[string]map[int]string{} // capture folder → pid → comm
	for _, f := range byKind[kindProcesses] {
		p := pods.of(f)
		s, c := readProcesses(dir, f, held[p.Dir])
		p.Processes = append(p.Processes, s)
		if comms[p.Dir] == nil {
			comms[p.Dir] = c
		}
	}
	for _, f := range byKind[kindSockets] {
		p := pods.of(f)
		p.Sockets = append(p.Sockets, readSockets(dir, f, comms[p.Dir]))
	}
	for _, f := range byKind[kindLayerIndex] {
		p := pods.of(f)
		p.Layers = append(p.Layers, readLayer(dir, f, tars[p.Dir]))
	}
	out := make([]reportPod, 0, len(pods))
	for _, d := range slices.Sorted(maps.Keys(pods)) {
		out = append(out, *pods[d])
	}
	return out
}

func setIn(m map[string]map[string]string, k1, k2, v string) {
	if m[k1] == nil {
		m[k1] = map[string]string{}
	}
	m[k1][k2] = v
}

// podIndex holds the pods of a bundle's captures by capture folder.
type podIndex map[string]*reportPod

// of returns the pod whose capture holds f, named by f's source or else
// by its folder (pods/<ns>/<pod>/node).
func (x podIndex) of(f File) *reportPod {
	d := captureDir(f.Path)
	if p := x[d]; p != nil {
		return p
	}
	p := &reportPod{Dir: d, Namespace: f.Source.Namespace, Pod: f.Source.Pod}
	if parts := strings.Split(d, "/"); len(parts) == 4 && parts[0] == "pods" && p.Pod == "" {
		p.Namespace, p.Pod = parts[1], parts[2]
	}
	x[d] = p
	return p
}

// reportFileSource is report.html's source: sensitive when the page shows
// command lines, which may hold secrets, as the process tables it copies
// them from are.
func reportFileSource(sealed time.Time, nodes []reportPod) Source {
	src := Source{Kind: "report", Collected: sealed}
	for _, p := range nodes {
		for _, s := range p.Processes {
			if s.Err == "" && s.Total > 0 {
				src.Sensitive = true
				src.Note = "shows the command lines of the processes the node agent captured"
			}
		}
	}
	return src
}

// captureDir is the capture folder a file of a capture is in: the path up
// to and with its "node" element (pods/<ns>/<pod>/node), else the file's
// folder.
func captureDir(p string) string {
	parts := strings.Split(p, "/")
	for i := len(parts) - 2; i >= 0; i-- {
		if parts[i] == "node" {
			return strings.Join(parts[:i+1], "/")
		}
	}
	return path.Dir(p)
}

func readCapture(dir string, f File) nodeCapture {
	var v struct {
		Node, UID, CapturedAt string
		Notes, Errors         []string
	}
	c := nodeCapture{File: f.Path}
	if err := readRecordedJSON(dir, f, &v); err != nil {
		c.Err = err.Error()
		return c
	}
	c.Node, c.UID, c.CapturedAt = v.Node, v.UID, v.CapturedAt
	c.Notes, c.NotesOmitted = capped(v.Notes)
	c.Errors, c.ErrsOmitted = capped(v.Errors)
	return c
}

// capped returns at most maxRows of s, and how many it left out.
func capped[T any](s []T) ([]T, int) {
	if len(s) > maxRows {
		return s[:maxRows], len(s) - maxRows
	}
	return s, 0
}

// shortHash is the first 12 digits of a hex hash, as the page shows it
// (the title attribute holds it whole).
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// shortID is the first digits of a runtime's container id, without its
// scheme (containerd://…).
func shortID(id string) string {
	if _, bare, ok := strings.Cut(id, "://"); ok {
		id = bare
	}
	return shortHash(id)
}

// formatTime shows a time of a capture in UTC, or "" when unknown.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// itoa is strconv.Itoa, for the few numbers composed into text.
func itoa(n int) string { return strconv.Itoa(n) }

// procSection is a capture's process table (processes.json).
type procSection struct {
	File, Err        string
	Node, CapturedAt string
	Containers       []procContainer
	// Total is the number of processes listed, Deleted those running an
	// executable deleted from disk; Omitted those not shown.
	Total, Deleted, Omitted int
}

// procContainer is one container's process tree, in depth-first order.
type procContainer struct {
	// Name is the container's name, "" for the pod's sandbox; ShortID
	// its runtime id's first digits, without the runtime's scheme.
	Name, ID, ShortID string
	Rows              []procRow
	Omitted           int
}

// procRow is one process as the page shows it.
type procRow struct {
	// Depth is the process's depth in the tree, 0 for a root.
	Depth       int
	PID, PPID   int
	UID, EUID   uint32
	State, Comm string
	Start       string
	Exe         string
	ExeDeleted  bool
	ExeSHA256   string
	ExeSize     int64
	ExeTooLarge bool
	// ExeHeld is the bundle's copy of the executable's bytes, if any.
	ExeHeld      string
	Cmdline      string
	CmdTruncated bool
	Errors       []string
}

// capturedProcess is what the report reads of agent/volatile.Process.
type capturedProcess struct {
	PID              int       `json:"pid"`
	PPID             int       `json:"ppid"`
	UID              uint32    `json:"uid"`
	EUID             uint32    `json:"euid"`
	State            string    `json:"state"`
	Start            time.Time `json:"start"`
	Comm             string    `json:"comm"`
	Cmdline          []string  `json:"cmdline"`
	CmdlineTruncated bool      `json:"cmdlineTruncated"`
	Exe              string    `json:"exe"`
	ExeDeleted       bool      `json:"exeDeleted"`
	ExeSHA256        string    `json:"exeSHA256"`
	ExeSize          int64     `json:"exeSize"`
	ExeTooLarge      bool      `json:"exeTooLarge"`
	Errors           []string  `json:"errors"`
	Container        string    `json:"container"`
}

// readProcesses reads a process table; held maps the SHA-256 of the
// executables whose bytes the bundle holds to their paths. It also
// returns each process's comm by pid, for the sockets' owners.
func readProcesses(dir string, f File, held map[string]string) (procSection, map[int]string) {
	var v struct {
		Node       string `json:"node"`
		CapturedAt string `json:"capturedAt"`
		Containers []struct {
			Name string `json:"name"`
			ID   string `json:"id"`
		} `json:"containers"`
		Processes []capturedProcess `json:"processes"`
	}
	s := procSection{File: f.Path}
	if err := readRecordedJSON(dir, f, &v); err != nil {
		s.Err = err.Error()
		return s, nil
	}
	s.Node, s.CapturedAt, s.Total = v.Node, v.CapturedAt, len(v.Processes)
	comms := make(map[int]string, len(v.Processes))
	byContainer := map[string][]capturedProcess{}
	for _, p := range v.Processes {
		comms[p.PID] = p.Comm
		if p.ExeDeleted {
			s.Deleted++
		}
		byContainer[p.Container] = append(byContainer[p.Container], p)
	}
	// The containers the capture names, in its order, then any other
	// name a process carries, then the sandbox.
	var names []string
	ids := map[string]string{}
	for _, c := range v.Containers {
		if _, dup := ids[c.Name]; !dup {
			names = append(names, c.Name)
		}
		ids[c.Name] = c.ID
	}
	for _, n := range slices.Sorted(maps.Keys(byContainer)) {
		if _, named := ids[n]; !named {
			names = append(names, n)
			ids[n] = ""
		}
	}
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(sandboxLast(a), sandboxLast(b)) })
	budget := maxRows
	for _, n := range names {
		c := procContainer{Name: n, ID: ids[n], ShortID: shortID(ids[n])}
		tree := processTree(byContainer[n])
		shown := min(len(tree), budget)
		budget -= shown
		for _, t := range tree[:shown] {
			c.Rows = append(c.Rows, procRowOf(t.proc, t.depth, held))
		}
		c.Omitted = len(tree) - shown
		s.Omitted += c.Omitted
		s.Containers = append(s.Containers, c)
	}
	return s, comms
}

// treeNode is a process at its depth in the tree.
type treeNode struct {
	proc  capturedProcess
	depth int
}

// processTree orders procs depth first by ppid, children by pid. A root
// is a process whose parent is not listed; a process that its parents'
// chain never reaches from a root (a cycle of ppids, which a hostile or
// inconsistent table can hold) is shown as a root too, so every process
// is shown once.
func processTree(procs []capturedProcess) []treeNode {
	listed := make(map[int]bool, len(procs))
	for _, p := range procs {
		listed[p.PID] = true
	}
	children := map[int][]int{} // ppid → indexes in procs
	var roots []int
	for i, p := range procs {
		if listed[p.PPID] && p.PPID != p.PID {
			children[p.PPID] = append(children[p.PPID], i)
		} else {
			roots = append(roots, i)
		}
	}
	byPID := func(a, b int) int { return cmp.Compare(procs[a].PID, procs[b].PID) }
	for _, c := range children {
		slices.SortFunc(c, byPID)
	}
	slices.SortFunc(roots, byPID)
	out := make([]treeNode, 0, len(procs))
	done := make([]bool, len(procs))
	visited := map[int]bool{} // pids whose children are out
	walk := func(root int) {
		// An explicit stack: a chain of 100 000 processes must not
		// exhaust the goroutine's stack.
		stack := []treeNode{{procs[root], 0}}
		done[root] = true
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			out = append(out, n)
			if visited[n.proc.PID] {
				continue // a repeated pid: its children are shown once
			}
			visited[n.proc.PID] = true
			kids := children[n.proc.PID]
			for i := len(kids) - 1; i >= 0; i-- {
				if !done[kids[i]] {
					done[kids[i]] = true
					stack = append(stack, treeNode{procs[kids[i]], n.depth + 1})
				}
			}
		}
	}
	for _, r := range roots {
		walk(r)
	}
	for i := range procs {
		if !done[i] {
			walk(i)
		}
	}
	return out
}

func procRowOf(p capturedProcess, depth int, held map[string]string) procRow {
	r := procRow{
		Depth: depth, PID: p.PID, PPID: p.PPID, UID: p.UID, EUID: p.EUID,
		State: p.State, Comm: p.Comm, Start: formatTime(p.Start),
		Exe: p.Exe, ExeDeleted: p.ExeDeleted, ExeSHA256: p.ExeSHA256, ExeSize: p.ExeSize,
		ExeTooLarge: p.ExeTooLarge, Cmdline: commandLine(p.Cmdline),
		CmdTruncated: p.CmdlineTruncated, Errors: p.Errors,
	}
	if p.ExeSHA256 != "" {
		r.ExeHeld = held[p.ExeSHA256]
	}
	if len(r.Errors) > maxOwners {
		r.Errors = append(r.Errors[:maxOwners:maxOwners], "… "+itoa(len(p.Errors)-maxOwners)+" more")
	}
	return r
}

// sandboxLast sorts the pod's sandbox ("") after its containers.
func sandboxLast(name string) int {
	if name == "" {
		return 1
	}
	return 0
}

// commandLine joins argv with spaces, quoting (Go syntax) each argument
// that is empty or holds a space, a quote or anything unprintable, so the
// page shows where each argument ends and what bytes it holds.
func commandLine(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.IndexFunc(a, func(r rune) bool {
			return r == ' ' || r == '"' || r == '\\' || r == '\'' || !strconv.IsPrint(r)
		}) >= 0 {
			a = strconv.Quote(a)
		}
		b.WriteString(a)
	}
	return b.String()
}

// sockSection is a capture's socket list (sockets.json).
type sockSection struct {
	File, Err  string
	CapturedAt string
	PodIPs     []string
	// Conns are the sockets but listening ones, those with a peer first;
	// Listen the listening ports. Peers counts the connections with a
	// remote peer, shown or not.
	Conns, Listen               []sockRow
	ConnsOmitted, ListenOmitted int
	Peers                       int
}

// sockRow is one socket as the page shows it.
type sockRow struct {
	Proto, Family, State string
	Local, Remote        string
	// Peer is set for an established or connected socket with a remote
	// address: a peer of the pod's, maybe the attacker's.
	Peer          bool
	UID           int64
	Owners        []sockOwner
	OwnersOmitted int
}

type sockOwner struct {
	PID  int
	Comm string
}

// readSockets reads a socket list; comms names the owners by pid.
func readSockets(dir string, f File, comms map[int]string) sockSection {
	var v struct {
		CapturedAt string   `json:"capturedAt"`
		PodIPs     []string `json:"podIPs"`
		Sockets    []struct {
			Proto     string `json:"proto"`
			Family    string `json:"family"`
			State     string `json:"state"`
			Local     string `json:"local"`
			Remote    string `json:"remote"`
			UID       int64  `json:"uid"`
			PIDs      []int  `json:"pids"`
			Listening bool   `json:"listening"`
		} `json:"sockets"`
	}
	s := sockSection{File: f.Path}
	if err := readRecordedJSON(dir, f, &v); err != nil {
		s.Err = err.Error()
		return s
	}
	s.CapturedAt = v.CapturedAt
	s.PodIPs, _ = capped(v.PodIPs)
	var conns, listen []sockRow
	for _, k := range v.Sockets {
		r := sockRow{Proto: k.Proto, Family: k.Family, State: k.State, Local: k.Local, Remote: k.Remote, UID: k.UID}
		pids := k.PIDs
		if len(pids) > maxOwners {
			pids, r.OwnersOmitted = pids[:maxOwners], len(pids)-maxOwners
		}
		for _, pid := range pids {
			r.Owners = append(r.Owners, sockOwner{pid, comms[pid]})
		}
		if k.Listening || k.State == "LISTEN" {
			listen = append(listen, r)
			continue
		}
		r.Peer = k.State == "ESTABLISHED" && hasPeer(k.Remote)
		if r.Peer {
			s.Peers++
		}
		conns = append(conns, r)
	}
	// Peers first: a flood of idle sockets must not push the attacker's
	// connection past the cap.
	slices.SortStableFunc(conns, func(a, b sockRow) int { return cmp.Compare(peerFirst(a), peerFirst(b)) })
	s.Conns, s.ConnsOmitted = capped(conns)
	s.Listen, s.ListenOmitted = capped(listen)
	return s
}

func peerFirst(r sockRow) int {
	if r.Peer {
		return 0
	}
	return 1
}

// hasPeer reports whether a remote address names a peer: not empty, not
// the unspecified address or port 0 of an unconnected socket.
func hasPeer(remote string) bool {
	switch remote {
	case "", "0.0.0.0:0", "[::]:0", "*:*":
		return false
	}
	return !strings.HasSuffix(remote, ":0")
}

// layerSection is the index of a container's writable layer
// (layer/<container>.json).
type layerSection struct {
	File, Err                    string
	Container, CapturedAt, Upper string
	// Tar is the layer's tar in the bundle, "" if it holds none.
	Tar   string
	Bytes int64
	Files []layerFile
	// Deleted are the paths the container deleted (whiteouts), Opaque
	// the directories whose image contents it hid.
	Deleted, Opaque []string
	Skipped         []layerSkipped
	// NFiles, NDeleted, NOpaque, NSkipped are the totals, shown or not;
	// the Omitted counts are those not shown.
	NFiles, NDeleted, NOpaque, NSkipped                         int
	FilesOmitted, DeletedOmitted, OpaqueOmitted, SkippedOmitted int
	// BudgetCut counts the listed entries a bound of the capture left
	// out (byte budget, entry bound, depth, too many names); Unlisted the
	// skipped entries the capture only counted.
	BudgetCut, Unlisted int
}

type layerFile struct {
	Path, Type, SHA256, Target string
	Mode                       string
	Size                       int64
	Changed, WhiteoutName      bool
}

type layerSkipped struct {
	Path   string `json:"path"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	Reason string `json:"reason"`
	Err    string `json:"error"`
}

// The reasons agent/layer gives for an entry a bound left out.
var budgetReasons = map[string]bool{
	"byte budget exceeded": true, "entry bound reached": true, "too many names to list": true, "too deep": true,
}

// readLayer reads a layer's index; tars maps containers to their tars.
func readLayer(dir string, f File, tars map[string]string) layerSection {
	var v struct {
		Container  string `json:"container"`
		CapturedAt string `json:"capturedAt"`
		Upper      string `json:"upper"`
		Files      []struct {
			Path         string      `json:"path"`
			Type         string      `json:"type"`
			Mode         fs.FileMode `json:"mode"`
			Size         int64       `json:"size"`
			SHA256       string      `json:"sha256"`
			Target       string      `json:"target"`
			Changed      bool        `json:"changed"`
			WhiteoutName bool        `json:"whiteoutName"`
		} `json:"files"`
		Skipped         []layerSkipped `json:"skipped"`
		SkippedUnlisted int            `json:"skippedUnlisted"`
		Deleted         []string       `json:"deleted"`
		Opaque          []string       `json:"opaque"`
		Bytes           int64          `json:"bytes"`
	}
	s := layerSection{File: f.Path}
	if err := readRecordedJSON(dir, f, &v); err != nil {
		s.Err = err.Error()
		return s
	}
	s.Container, s.CapturedAt, s.Upper, s.Bytes = v.Container, v.CapturedAt, v.Upper, v.Bytes
	s.Tar = tars[strings.TrimSuffix(path.Base(f.Path), ".json")]
	s.NFiles, s.NDeleted, s.NOpaque = len(v.Files), len(v.Deleted), len(v.Opaque)
	s.NSkipped = len(v.Skipped) + v.SkippedUnlisted
	shown, omitted := capped(v.Files)
	s.FilesOmitted = omitted
	for _, x := range shown {
		s.Files = append(s.Files, layerFile{Path: x.Path, Type: x.Type, Mode: x.Mode.String(), Size: x.Size,
			SHA256: x.SHA256, Target: x.Target, Changed: x.Changed, WhiteoutName: x.WhiteoutName})
	}
	s.Deleted, s.DeletedOmitted = capped(v.Deleted)
	s.Opaque, s.OpaqueOmitted = capped(v.Opaque)
	for _, k := range v.Skipped {
		if budgetReasons[k.Reason] {
			s.BudgetCut++
		}
	}
	s.Skipped, s.SkippedOmitted = capped(v.Skipped)
	s.Unlisted = v.SkippedUnlisted
	return s
}

// maxIndent bounds the indentation of a process in the tree, so that a
// chain of thousands of processes stays on the page.
const maxIndent = 24

// indent is the left padding of a process at depth d, in the template's
// CSS: a number, which html/template passes as it is.
func indent(d int) string {
	return strconv.FormatFloat(0.5+1.2*float64(min(d, maxIndent)), 'f', 1, 64) + "rem"
}
