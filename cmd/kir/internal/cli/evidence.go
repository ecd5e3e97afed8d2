package cli

import (
	"compress/gzip"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/urfave/cli/v2"

	"kir.dev/kir/evidence"
)

// Flags of the evidence commands besides --out and --key (collect.go).
const (
	flagAlg      = "alg"
	flagInsecure = "insecure"
)

func evidenceCommand() *cli.Command {
	return &cli.Command{
		Name:  "evidence",
		Usage: "keys, verification, summaries and shipping of evidence bundles",
		Description: "An evidence bundle is a directory (or a .tar.gz of one) that kir sealed: every file hashed\n" +
			"in manifest.json, a hash-chained custody.log, an in-toto statement and, with a key, its DSSE\n" +
			"signature. verify exits 0 only when everything holds and the signature verified with --key,\n" +
			"7 when anything does not hold, 8 when all holds but no --key was given.",
		Subcommands: []*cli.Command{
			evidenceKeygenCommand(), evidenceVerifyCommand(), evidenceShowCommand(), evidencePushCommand(), evidencePullCommand(),
		},
	}
}

// bundleOptions are the flags of the evidence commands; each takes some of
// them.
type bundleOptions struct {
	out      string
	alg      string
	key      string
	insecure bool
	output   outputOptions
}

func evidenceKeygenCommand() *cli.Command {
	o := &bundleOptions{}
	return &cli.Command{
		Name:  "keygen",
		Usage: "write a new signing key pair: DIR/kir.key (private, 0600) and DIR/kir.pub; never overwrites",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagOut, Usage: "directory to write kir.key and kir.pub into (created 0700 if missing)", Destination: &o.out},
			&cli.StringFlag{Name: flagAlg, Value: evidence.AlgEd25519, Usage: "key algorithm: " + evidence.AlgEd25519 + " or " + evidence.AlgECDSAP256, Destination: &o.alg},
		},
		Action: o.keygen,
	}
}

func evidenceVerifyCommand() *cli.Command {
	o := &bundleOptions{}
	return &cli.Command{
		Name:  "verify",
		Usage: "check every file's hash, the custody chain and, with --key, the signatures",
		Description: "Exit 0 only when everything holds and every signature verified with --key; 7 when\n" +
			"anything does not hold, every problem listed (file, custody line, what); 8 when hashes and\n" +
			"custody hold but no --key was given, so the signature was not checked. Read-only: verifying\n" +
			"records nothing in the bundle.",
		ArgsUsage: "DIR|FILE.tar.gz",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagKey, Usage: "public key (kir.pub) to check the signatures with", Destination: &o.key},
			o.output.flag(),
		},
		Action: o.verify,
	}
}

func evidenceShowCommand() *cli.Command {
	o := &bundleOptions{}
	return &cli.Command{
		Name:      "show",
		Usage:     "summarise a bundle: incident, seal, signers, files, the custody timeline (read, not verified)",
		ArgsUsage: "DIR|FILE.tar.gz",
		Flags:     []cli.Flag{o.output.flag()},
		Action:    o.show,
	}
}

func evidencePushCommand() *cli.Command {
	o := &bundleOptions{}
	return &cli.Command{
		Name:  "push",
		Usage: "upload a sealed bundle directory to a registry as an OCI artifact; print its digest reference",
		Description: "Credentials come from the Docker config and its credential helpers, as for docker and crane.\n" +
			"With --key, once the push succeeded, a signed \"push\" entry (ref, digest) is appended to the\n" +
			"local bundle's custody.log: the pushed copy is the bundle as sealed and does not hold it.",
		ArgsUsage: "DIR REF",
		Flags: []cli.Flag{
			signingKeyFlag(&o.key, "private key (kir.key) the bundle was sealed with, to sign the custody entry recording the push"),
			o.insecureFlag(),
		},
		Action: o.push,
	}
}

func evidencePullCommand() *cli.Command {
	o := &bundleOptions{}
	return &cli.Command{
		Name:  "pull",
		Usage: "download a bundle from a registry into --out and check its hashes and custody",
		Description: "Exit 0 when the pull succeeded and the hashes and custody hold (the signature is not\n" +
			"checked: run kir evidence verify --key), 7 when they do not, every problem listed.",
		ArgsUsage: "REF",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagOut, Usage: "directory to unpack into; must not exist or be empty", Destination: &o.out},
			o.insecureFlag(),
		},
		Action: o.pull,
	}
}

func (o *bundleOptions) insecureFlag() cli.Flag {
	return &cli.BoolFlag{Name: flagInsecure, Usage: "accept the registry's TLS certificate without verifying it " +
		"(registries on localhost, loopback and private addresses may be plain HTTP anyway)", Destination: &o.insecure}
}

// exitError ends kir with its code: the outcomes of verify, which are no
// failure of kir's but must be told apart by scripts, and a bundle or
// artifact that is not there. ExitCode reads it.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func (o *bundleOptions) keygen(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError{fmt.Errorf("keygen takes no arguments (got %s): give the directory as --out DIR", strings.Join(c.Args().Slice(), " "))}
	}
	dir, alg := o.out, o.alg
	if dir == "" {
		return usageError{errors.New("give --out DIR, the directory to write kir.key and kir.pub into")}
	}
	if alg != evidence.AlgEd25519 && alg != evidence.AlgECDSAP256 {
		return usageError{fmt.Errorf("invalid --alg %q: want %s or %s", alg, evidence.AlgEd25519, evidence.AlgECDSAP256)}
	}
	keyPath, pubPath := filepath.Join(dir, evidence.PrivateKeyFile), filepath.Join(dir, evidence.PublicKeyFile)
	if err := evidence.Keygen(dir, alg); errors.Is(err, fs.ErrExist) {
		return usageError{fmt.Errorf("%s already holds a key (%s or %s): kir never overwrites a key; choose another --out", dir, evidence.PrivateKeyFile, evidence.PublicKeyFile)}
	} else if err != nil {
		return err
	}
	pub, err := evidence.LoadPublicKey(pubPath)
	if err != nil {
		return err
	}
	id, err := evidence.KeyID(pub)
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "key id:      %s (%s)\n", id, alg)
	fmt.Fprintf(w, "private key: %s (mode 0600, not encrypted: it signs evidence, keep it like an SSH key)\n", keyPath)
	_, err = fmt.Fprintf(w, "public key:  %s (give it to verifiers: kir evidence verify --key %s BUNDLE)\n", pubPath, pubPath)
	return err
}

func (o *bundleOptions) verify(c *cli.Context) error {
	format, err := o.format()
	if err != nil {
		return err
	}
	args, err := evidenceArgs(c, "DIR|FILE.tar.gz")
	if err != nil {
		return err
	}
	path := args[0]
	if err := bundleExists(path); err != nil {
		return err
	}
	var pub crypto.PublicKey
	if k := o.key; k != "" {
		if pub, err = evidence.LoadPublicKey(k); err != nil {
			return usageError{err}
		}
	}
	rep, err := evidence.Verify(path, pub)
	if err != nil {
		return bundleError(err)
	}
	if rep.Problems == nil {
		rep.Problems = []evidence.Problem{} // "problems": [] rather than null
	}
	if format == "text" {
		err = printVerification(c.App.Writer, rep)
	} else {
		err = printStructured(c.App.Writer, format, rep)
	}
	if err != nil {
		return err
	}
	return outcomeError(rep)
}

// outcomeError is the error a verification ends kir with: nil when
// verified, else one carrying exit code 7 or 8.
func outcomeError(rep *evidence.Report) error {
	switch o := rep.Outcome(); {
	case o == evidence.Failed:
		return exitError{ExitUnverified, fmt.Errorf("%s does not verify: %d problem(s)", rep.Path, len(rep.Problems))}
	case o == evidence.NotChecked && rep.Signed:
		return exitError{ExitUnsigned, fmt.Errorf("%s: hashes and custody hold, but the signature was not checked: give --key PUBFILE", rep.Path)}
	case o == evidence.NotChecked:
		return exitError{ExitUnsigned, fmt.Errorf("%s: hashes and custody hold, but the bundle is not signed", rep.Path)}
	}
	return nil
}

// printVerification writes a report for people: what was checked, every
// problem (path, custody line, what), and the outcome last.
func printVerification(w io.Writer, r *evidence.Report) error {
	p := &textPrinter{w: w}
	sealed := "not sealed"
	if !r.Sealed.IsZero() {
		sealed = "sealed " + r.Sealed.UTC().Format(time.RFC3339)
	}
	p.line("bundle %s: incident %s, %s", r.Path, orNone(r.Incident), sealed)
	p.line("hashed %d files, %d bytes; custody.log: %d entries, %d appended after sealing", r.Files, r.Bytes, r.CustodyEntries, r.PostSeal)
	for _, pr := range r.Problems {
		p.line("%s", pr)
	}
	switch r.Outcome() {
	case evidence.Verified:
		p.line("VERIFIED: every file, the custody chain and every signature hold (key %s)", r.KeyID)
	case evidence.Failed:
		p.line("FAILED: %d problem(s), listed above", len(r.Problems))
	case evidence.NotChecked:
		if !r.Signed {
			p.line("SIGNATURE NOT CHECKED: hashes and custody hold, but the bundle is not signed: " +
				"anyone could have rewritten it consistently")
			break
		}
		p.line("SIGNATURE NOT CHECKED: hashes and custody hold, but no --key was given: without the signature, "+
			"anyone could have rewritten the bundle consistently. Check it: kir evidence verify --key kir.pub %s", r.Path)
	}
	return p.err
}

func (o *bundleOptions) show(c *cli.Context) error {
	format, err := o.format()
	if err != nil {
		return err
	}
	args, err := evidenceArgs(c, "DIR|FILE.tar.gz")
	if err != nil {
		return err
	}
	if err := bundleExists(args[0]); err != nil {
		return err
	}
	s, err := evidence.Show(args[0])
	if err != nil {
		return bundleError(err)
	}
	if format != "text" {
		return printStructured(c.App.Writer, format, s)
	}
	return printSummary(c.App.Writer, s)
}

// printSummary writes the summary of a bundle for people, the custody
// timeline as a table.
func printSummary(w io.Writer, s *evidence.Summary) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	sealed, signed := "not sealed", "no"
	if !s.Sealed.IsZero() {
		sealed = s.Sealed.UTC().Format(time.RFC3339Nano)
	}
	if s.Signed {
		signed = "yes, by key " + strings.Join(s.KeyIDs, ", ")
	}
	fmt.Fprintf(tw, "bundle:\t%s\n", s.Path)
	fmt.Fprintf(tw, "incident:\t%s\n", orNone(s.Incident))
	fmt.Fprintf(tw, "sealed:\t%s\n", sealed)
	fmt.Fprintf(tw, "signed:\t%s\n", signed)
	fmt.Fprintf(tw, "files:\t%d, %d bytes\n", len(s.Files), s.Bytes)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "custody (%d entries):\n", len(s.Custody))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SEQ\tTIME\tACTION\tACTOR\tDETAIL")
	for _, e := range s.Custody {
		detail := shortDetail(e.Detail)
		if e.PostSeal {
			signer := "unsigned"
			if e.KeyID != "" {
				signer = "signed by key " + shortID(e.KeyID)
			}
			detail = strings.TrimSpace(detail + " (after sealing, " + signer + ")")
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format(time.RFC3339), e.Action, actorOf(e.Entry), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Problems) > 0 {
		fmt.Fprintf(w, "problems (%d):\n", len(s.Problems))
		for _, pr := range s.Problems {
			fmt.Fprintf(w, "  %s\n", pr)
		}
	}
	_, err := fmt.Fprintf(w, "read, not verified: kir evidence verify --key kir.pub %s checks it\n", s.Path)
	return err
}

// maxDetail bounds a custody detail in show's table; -o json has it whole.
const maxDetail = 80

// shortDetail is a custody entry's detail as one line of compact JSON,
// cut to maxDetail runes.
func shortDetail(d any) string {
	if d == nil {
		return ""
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Sprint(d)
	}
	if r := []rune(string(b)); len(r) > maxDetail {
		return string(r[:maxDetail-1]) + "…"
	}
	return string(b)
}

// actorOf names who recorded an entry: the cluster identity, else the OS
// user and host (entries appended away from a cluster have no actor).
func actorOf(e evidence.Entry) string {
	switch {
	case e.Actor != "":
		return e.Actor
	case e.OSUser != "" || e.Host != "":
		return e.OSUser + "@" + e.Host
	}
	return "-"
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (o *bundleOptions) push(c *cli.Context) error {
	args, err := evidenceArgs(c, "DIR", "REF")
	if err != nil {
		return err
	}
	dir, ref := args[0], args[1]
	if err := bundleExists(dir); err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return usageError{fmt.Errorf("%s is not a directory: push takes a sealed bundle directory", dir)}
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return usageError{fmt.Errorf("parsing reference %q: %w", ref, err)}
	}
	var signer evidence.Signer
	if k := o.key; k != "" {
		if signer, err = evidence.LoadSigner(k); err != nil {
			return usageError{err}
		}
		// An entry signed by another key than the bundle's would make the
		// bundle fail verification: refuse before anything is pushed.
		if err := sameKey(dir, signer); err != nil {
			return err
		}
	}
	digest, err := evidence.Push(c.Context, dir, ref, o.registryOptions()...)
	if errors.Is(err, evidence.ErrNotSealed) {
		return usageError{fmt.Errorf("%w: seal it first (only a sealed bundle is pushed)", err)}
	}
	if err != nil {
		return registryError(err)
	}
	digestRef := r.Context().Digest(digest).String()
	if _, err := fmt.Fprintln(c.App.Writer, digestRef); err != nil {
		return err
	}
	if signer == nil {
		fmt.Fprintf(c.App.ErrWriter, "kir: the push is not recorded in %s: give --key (or KIR_SIGNING_KEY) to record it\n",
			filepath.Join(dir, evidence.CustodyFile))
		return nil
	}
	// After the push, not before: the pushed bundle is the one that was
	// sealed, and the local one records where it went.
	e := evidence.Entry{Action: "push", Detail: map[string]string{"ref": ref, "digest": digest}, Version: Version}
	if err := evidence.AppendCustody(dir, e, signer); err != nil {
		return partialError{fmt.Errorf("pushed as %s, but not recorded: %w", digestRef, err)}
	}
	fmt.Fprintf(c.App.ErrWriter, "kir: recorded the push in %s, signed by key %s\n", filepath.Join(dir, evidence.CustodyFile), signer.KeyID())
	return nil
}

// sameKey refuses a signer other than the one that sealed the bundle in
// dir, if it was signed.
func sameKey(dir string, signer evidence.Signer) error {
	s, err := evidence.Show(dir)
	if err != nil {
		return err
	}
	if s.Signed && !slices.Contains(s.KeyIDs, signer.KeyID()) {
		return usageError{fmt.Errorf("--key is key %s, but %s was signed by key %s: entries signed by another key do not verify",
			signer.KeyID(), dir, strings.Join(s.KeyIDs, ", "))}
	}
	return nil
}

func (o *bundleOptions) pull(c *cli.Context) error {
	args, err := evidenceArgs(c, "REF")
	if err != nil {
		return err
	}
	ref, out := args[0], o.out
	if out == "" {
		return usageError{errors.New("give --out DIR, the directory to unpack the bundle into")}
	}
	if _, err := name.ParseReference(ref); err != nil {
		return usageError{fmt.Errorf("parsing reference %q: %w", ref, err)}
	}
	if err := evidence.Pull(c.Context, ref, out, o.registryOptions()...); err != nil {
		if errors.Is(err, evidence.ErrExists) || errors.Is(err, evidence.ErrNotEvidence) {
			return usageError{err}
		}
		return registryError(err)
	}
	rep, err := evidence.Verify(out, nil)
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "pulled %s into %s\n", ref, out)
	if err := printVerification(w, rep); err != nil {
		return err
	}
	if rep.Outcome() == evidence.Failed {
		return outcomeError(rep)
	}
	return nil // the transfer succeeded; checking the signature needs the key
}

// registryOptions are the remote options of push and pull: credentials
// from the Docker config and credential helpers, as docker and crane use.
func (o *bundleOptions) registryOptions() []remote.Option {
	opts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if o.insecure {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.InsecureSkipVerify = true
		opts = append(opts, remote.WithTransport(t))
	}
	return opts
}

// registryError gives a registry's refusal its exit code: not found (3),
// forbidden or not authenticated (4).
func registryError(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return err
	}
	switch te.StatusCode {
	case http.StatusNotFound:
		return exitError{ExitNotFound, err}
	case http.StatusUnauthorized, http.StatusForbidden:
		return exitError{ExitForbidden, err}
	}
	return err
}

// evidenceArgs returns the positional arguments, which must be exactly
// those named.
func evidenceArgs(c *cli.Context, names ...string) ([]string, error) {
	if c.NArg() != len(names) {
		return nil, usageError{fmt.Errorf("%s takes %s; got %d argument(s)", c.Command.Name, strings.Join(names, " "), c.NArg())}
	}
	return c.Args().Slice(), nil
}

// bundleError makes a file that is neither a directory nor a .tar.gz a
// usage error.
func bundleError(err error) error {
	if errors.Is(err, gzip.ErrHeader) {
		return usageError{err}
	}
	return err
}

// bundleExists tells a bundle that is not there (exit 3) from one that
// does not verify.
func bundleExists(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return exitError{ExitNotFound, fmt.Errorf("no bundle at %s", path)}
	}
	return nil
}

// format is -o, checked.
func (o *bundleOptions) format() (string, error) {
	err := o.output.check()
	return o.output.format, err
}
