//go:build linux

package volatile

// Node is a process and its children, by PPID.
type Node struct {
	Process  Process
	Children []*Node
}

// Tree arranges procs by parent. The roots are the processes whose parent
// is not in procs (a pod's sandbox, or a container's first process, whose
// parent is the runtime's shim). Roots and children keep procs' order,
// which Processes sorts by PID.
func Tree(procs []Process) []*Node {
	nodes := make(map[int]*Node, len(procs))
	for _, p := range procs {
		nodes[p.PID] = &Node{Process: p}
	}
	var roots []*Node
	for _, p := range procs {
		n := nodes[p.PID]
		if parent, ok := nodes[p.PPID]; ok && p.PPID != p.PID {
			parent.Children = append(parent.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	return roots
}
