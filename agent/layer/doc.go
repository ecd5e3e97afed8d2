//go:build linux

// Package layer archives what was written into a container: its writable
// layer, the overlayfs upper directory that containerd's overlayfs
// snapshotter keeps (…/snapshots/N/fs), as a POSIX (PAX) tar with a
// [Summary] of what was archived, skipped and deleted.
//
// [Archive] walks the upper directory in name order and writes:
//
//   - regular files with their bytes, each hashed (SHA-256) while written;
//     a file with several hard links is written in full at each of its
//     names (no tar hard-link entries, so any name can be extracted alone);
//   - directories, and symbolic links as links: a link's target is recorded,
//     never followed;
//   - overlay whiteouts (a character device 0/0: a file of the image that
//     the container deleted) as [Summary.Deleted] and as an empty file
//     named .wh.<name>, and opaque directories (xattr
//     trusted.overlay.opaque=y: a directory whose image contents the
//     container replaced) as [Summary.Opaque] and a .wh..wh..opq entry:
//     the OCI image-layer convention, so the tar is a layer diff that OCI
//     tools read as the container's changes.
//
// Character and block devices, FIFOs and sockets are skipped and listed in
// [Summary.Skipped]; so are files beyond the byte budget
// ([Options.MaxBytes], 256 MiB by default, counted in file bytes) or the
// entry bound ([Options.MaxEntries], 100 000), with their sizes. A file
// too large for what is left of the budget is skipped and the walk goes
// on, so smaller files after it are still archived.
//
// # Never outside the upper directory
//
// The upper directory belongs to the attacker, who can change it during
// the walk (the container is isolated, not stopped). Every name is opened
// relative to its parent's descriptor, one component at a time, with
// O_NOFOLLOW (and O_DIRECTORY for directories): a symbolic link swapped in
// for a file or directory after it was listed makes the open fail (the
// entry is skipped as changed), it is never resolved. Every open descriptor
// is checked with fstat against what was listed (same inode, same type),
// so a file replaced between listing and opening is skipped, not read. The
// walk does not cross into another file system (a mount on the upper
// directory is skipped), and regular files are opened O_NONBLOCK so a FIFO
// swapped in cannot block it.
//
// A file that grows while read is archived at the size it had when its
// header was written; one that shrinks is padded with zeros (the tar header
// is already written) — both are marked [File.Changed], and the hash is of
// the bytes in the tar.
//
// # Limits
//
// Extended attributes other than the overlay's are not recorded (a file
// capability, security.capability, is not in the tar). With overlayfs
// metacopy=on (containerd leaves it off) an upper file may hold metadata
// only, its data in a lower layer; its bytes in the tar are then not the
// container's view. Renamed lower directories (redirect_dir) are archived
// as directories, their origin not recorded. A file named .wh.<x> written
// by the container reads, in the tar, as a whiteout: such names are
// archived and flagged ([File.WhiteoutName]), so the Summary tells them
// apart. Directories deeper than [Options.MaxDepth] are skipped (each level
// holds a descriptor). The listing of skipped entries is bounded
// ([Options.MaxSkipped]); beyond it skipped entries are only counted. A
// directory holding more than MaxEntries+MaxSkipped names is cut short
// (and named so): which names are lost then depends on the directory's
// order. A hard-linked file counts against the budget at each name.
package layer
