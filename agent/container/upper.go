//go:build linux

package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// maxMountinfo bounds the /proc/PID/mountinfo read: a process with the
// privilege to mount can make it long.
const maxMountinfo = 16 << 20

// HostPath returns the path, under procRoot, of the host's path p: p
// through PID 1's root (procRoot/1/root/p). The agent runs in its own mount
// namespace (with hostPID): the host's file systems are reachable through
// the root of the host's init. p is a path the kernel reported (the
// upperdir of a container's root mount) in the host's mount namespace, where
// the runtime mounted it; its directories are the runtime's, owned by root,
// so resolving it does not follow a link the container could have made
// (an absolute link of the host's own on the way would resolve in the
// agent's root, as the kernel resolves absolute links from the caller's
// root: see the package's Limits).
// Opening it needs CAP_SYS_PTRACE (/proc/1/root is guarded by the ptrace
// access check on PID 1) and, for a restrictive directory, DAC_READ_SEARCH.
func HostPath(procRoot, p string) string {
	return procRoot + "/1/root" + p
}

// Upper returns the host path of the overlay upper directory of the root
// file system of process pid: from /proc/PID/mountinfo, the first mount
// whose mount point is "/" (the container's root; a mount stacked on "/"
// later is not the process's root, and may be the attacker's, naming a
// path in its own mount namespace), which must be overlay, its upperdir=
// super option unescaped. An error names the root's file system type when
// it is not overlay.
func Upper(procRoot string, pid int) (string, error) {
	name := filepath.Join(procRoot, strconv.Itoa(pid), "mountinfo")
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("reading the root mount: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMountinfo+1))
	if err != nil {
		return "", fmt.Errorf("reading the root mount: %w", err)
	}
	if len(b) > maxMountinfo {
		return "", fmt.Errorf("reading the root mount: %s is longer than %d bytes", name, maxMountinfo)
	}
	upper, err := parseUpper(string(b))
	if err != nil {
		return upper, fmt.Errorf("root mount in %s: %w", name, err)
	}
	return upper, nil
}

// mount is what parseUpper reads of one mountinfo line.
type mount struct {
	point, fstype, superOpts string
}

// parseMountinfo reads one line of mountinfo (proc(5)): "ID parent
// major:minor root point options [optional…] - fstype source superoptions".
func parseMountinfo(line string) (mount, error) {
	f := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 7 || sep < 0 || len(f) < sep+4 {
		return mount{}, fmt.Errorf("malformed mountinfo line %q", line)
	}
	return mount{point: unescapeOctal(f[4]), fstype: unescapeOctal(f[sep+1]), superOpts: f[sep+3]}, nil
}

func parseUpper(mountinfo string) (string, error) {
	var root *mount
	var stacked []string
	for line := range strings.Lines(mountinfo) {
		m, err := parseMountinfo(strings.TrimSuffix(line, "\n"))
		if err != nil {
			return "", err
		}
		if m.point != "/" {
			continue
		}
		if root == nil {
			root = &m
		} else {
			stacked = append(stacked, m.fstype)
		}
	}
	if root == nil {
		return "", errors.New("no mount on /")
	}
	if root.fstype != "overlay" {
		return "", fmt.Errorf("root file system is %q, not overlay: no upper directory", root.fstype)
	}
	upper, err := upperdir(root.superOpts)
	if err == nil && len(stacked) > 0 {
		err = fmt.Errorf("mounts stacked on / (%s) left aside", strings.Join(stacked, ", "))
	}
	return upper, err
}

// upperdir returns the upperdir= super option of an overlay mount. The
// kernel prints it with seq_show_option, which escapes ',', ' ', '\t',
// '\n' and '\\' as octal (\054 …): the options are split on the commas
// left. The value is the string the mounter gave, before overlayfs's own
// unescaping (ovl_unescape: a backslash quotes the next character, how a
// ',' or ':' is put in a path), which is applied after. It must be an
// absolute, clean path (containerd gives one; a relative one would be
// relative to the mounter's working directory, unknown here).
func upperdir(superOpts string) (string, error) {
	for opt := range strings.SplitSeq(superOpts, ",") {
		v, ok := strings.CutPrefix(opt, "upperdir=")
		if !ok {
			continue
		}
		p := ovlUnescape(unescapeOctal(v))
		if !path.IsAbs(p) || path.Clean(p) != p {
			return "", fmt.Errorf("overlay upperdir %q is not an absolute, clean path", p)
		}
		return p, nil
	}
	return "", errors.New("overlay root has no upperdir (read-only overlay)")
}

// unescapeOctal undoes the kernel's \ooo escapes of mountinfo fields.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			n, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// ovlUnescape is overlayfs's unescaping of a layer path: a backslash
// quotes the character after it.
func ovlUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
