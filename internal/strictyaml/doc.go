// Package strictyaml decodes YAML node by node, strictly, for kir's own
// file formats (playbooks, the Falco routing config): an unknown or
// repeated key, a value of the wrong kind, an alias or a second document
// is a problem at its line and column, and decoding goes on past it, so
// that one pass reports every problem in a file at once.
//
// A format's decoder walks the tree with a Decoder's helpers (Mapping,
// Seq, Str, Bool) and adds its own checks with At; the Problems collected
// become that format's own error type, which names the file.
//
// Aliases are refused outright: expanding them is how a small YAML file
// becomes a huge one, and kir's formats have no need for them.
package strictyaml
