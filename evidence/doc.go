// Package evidence writes, seals, signs, verifies and ships evidence
// bundles: what kir collected about an incident and everything it did, in a
// form an auditor can check offline, years later, without kir.
//
// # Layout
//
// A bundle is a directory, or a .tar.gz of one (Pack):
//
//	manifest.json        every evidence file: path, sha256, size, Source
//	custody.log          hash-chained JSON lines: who did what, when
//	statement.json       in-toto Statement v1 over every file sealed
//	statement.dsse.json  DSSE envelope signing statement.json (when signed)
//	report.html          one self-contained page for people
//	logs/ manifests/ events/ images/<n>/ journal/ …  the evidence itself
//
// Collectors write through Sink (Put, Custody); *Bundle implements it.
// Files are written once: created exclusively (O_EXCL) under a temporary
// name (.kir-tmp-…) in their directory, hashed while written, made
// read-only (0444) and renamed into place; new directories are 0700
// (evidence holds personal data). Nothing is fsynced as it is written:
// Close and Seal make everything written durable, a step's few files and
// directories with an fsync each, its many with one syncfs(2) (one
// file-system commit; an fsync each where there is no syncfs), so a
// playbook step that returned has its evidence on disk. A killed process
// loses nothing written; a machine that loses power mid-step loses at most
// that step's files, which Open then finds missing from the index or torn,
// removes, and the resumed step collects again. Names are clean relative
// slash paths, never a bundle's own file, never twice. Put is safe for
// concurrent use. Files stay plain: a bundle is compressed whole, never
// member by member, so each file's hash is the hash of what an auditor
// opens.
//
// # manifest.json
//
// apiVersion kir.dev/v1alpha1, kind EvidenceManifest: the incident, when the
// bundle was created and sealed, who sealed it (cluster identity, OS user,
// host, kir version), the sealed part of the custody log (below), and every
// evidence file plus report.html, sorted by path. Each file's Source says
// where it came from and when: collection times are UTC RFC 3339 with all
// nine digits of nanoseconds, and auditID is the Audit-Id of the API request
// that read it, to find it in the API server's audit log.
//
// # custody.log
//
// The journal format of kir's run journals (internal/journal), one record a
// line, durable with the bundle's files (Close, Seal):
//
//	{"seq":2,"time":"…","type":"contain","data":{"detail":{…},"actor":"…","osUser":"…","host":"…","version":"…"},"prev":"<sha256 of line 1>"}
//
// type is the Entry's action, data the rest of it. Create writes a
// "create" entry, Seal a "seal" entry (file count, bytes, the signing key's
// id) as the last line before sealing. Changing, inserting or removing any
// line breaks the chain at the next one; Verify names that line.
//
// # Sealing
//
// Seal writes, in order: the seal entry; report.html; manifest.json, which
// records the custody log as it now is (its byte length, sha256, number of
// entries and the hash of its last line); statement.json; and, with a
// signer, statement.dsse.json. After that no file changes, except that
// custody.log grows.
//
// statement.json is an in-toto Statement v1 (https://in-toto.io/Statement/v1)
// with predicateType https://kir.dev/evidence/v1. Its subjects are every
// file in manifest.json, manifest.json itself, and custody.log with the
// digest of its sealed part; the predicate repeats the incident, the seal
// time and identity, and the sealed custody log's length and hash.
//
// # After sealing
//
// Release, export, push and verification happen later, often on another
// machine. AppendCustody adds their entries to a sealed bundle: each line is
// chained to the previous one like any other and, if signed, carries in
// data.sig a DSSE signature (keyid, sig) with payload type
// application/vnd.kir.custody.v1+json over the line as it would be without
// data.sig — its seq, time, action, detail and prev, so over the whole
// chain before it too. A bundle sealed with a signature accepts signed
// entries only, and AppendCustody refuses a log whose chain is broken or
// whose sealed part changed. The entries are kept inside the one log, not
// in a second file, so the timeline stays one readable, appendable file; the
// sealed part is what the statement signs, the rest is signed line by line.
//
// What the chain cannot show: the removal of the last entries appended
// after sealing (no later line is left to break); and without the key, an
// edit of the last such entry. Verify with the key detects the edit;
// keeping a copy or a pushed artifact detects the removal.
//
// # Signing: DSSE and in-toto, implemented here
//
// The statement is signed as a DSSE envelope (payloadType
// application/vnd.in-toto+json): the signature is over PAE(type, body) =
// "DSSEv1 <len(type)> <type> <len(body)> <body>"; Ed25519 signs PAE itself,
// ECDSA P-256 its SHA-256 (ASN.1 DER). keyid is the hex SHA-256 of the PKIX
// (DER) public key. Keygen writes kir.key (PKCS#8 PEM, 0600, not encrypted:
// protect it like an SSH key) and kir.pub (PKIX PEM); LoadSigner and NewSigner
// accept any Ed25519 or ECDSA P-256 crypto.Signer, a KMS key included.
//
// kir implements DSSE and the statement itself, a few dozen lines, rather
// than producing a Sigstore bundle with sigstore-go: bundles are sealed and
// verified offline, in air-gapped forensics networks, where Fulcio
// certificates and Rekor entries cannot be had or checked; the key is the
// responders' own; and sigstore-go would bring a large tree of modules
// (TUF, transparency log clients, protobufs) into a tool that must stay
// small and auditable. What is given up is a public transparency log entry
// proving when the signature was made; the seal time is kir's word, backed
// by the key.
//
// Because the envelope is plain DSSE over an in-toto statement, stock
// cosign checks any sealed file against it without kir and without a
// network (cosign_test.go runs this with cosign v2.6.5 and both kinds of
// key):
//
//	SIGSTORE_REKOR_PUBLIC_KEY=/dev/null cosign verify-blob-attestation \
//	    --key kir.pub --signature statement.dsse.json \
//	    --type https://kir.dev/evidence/v1 --insecure-ignore-tlog logs/app.log
//
// It prints "Verified OK" and exits 0, or exits 1: for a changed file, "no
// matching subject digest found"; for another key, "accepted signatures do
// not match threshold". --insecure-ignore-tlog because there is no Rekor
// entry to check (cosign warns that this is insecure: here it is the
// design). SIGSTORE_REKOR_PUBLIC_KEY, set to any path, because otherwise
// cosign v2 first fetches Sigstore's trusted root from
// tuf-repo-cdn.sigstore.dev, even with --key: offline it warns and goes
// on, but an air-gapped network sees a DNS query and an HTTPS connection
// try to leave it. With --insecure-ignore-tlog and --key, the variable is
// never read.
//
// Caveats: cosign checks the signature and that the file's sha256 is one of
// the subjects' — not the subject's name, not manifest.json, not the
// custody chain, not files missing or added: that is `kir evidence verify`.
// For custody.log after entries were appended, check its sealed part:
// head -c <custody.size from manifest.json> custody.log > custody.sealed,
// then pass custody.sealed. cosign refuses files over 128 MiB unless
// COSIGN_MAX_ATTACHMENT_SIZE is raised (e.g. 4GiB), which large image layers
// need; --digest <sha256> --digestAlg sha256 in place of the file avoids
// both (the digests are in manifest.json). cosign v3, which expects
// Sigstore bundles by default, may need --new-bundle-format=false (not
// tested).
//
// # Verifying
//
// Verify reads a directory, or a .tar.gz in one streaming pass without
// extracting it, hashing directory files in parallel (one worker per CPU,
// 1 MiB reads). It reports every problem at once, each naming the file (and
// the custody line): files changed, missing or added (a temporary file left
// by a crash is "added"; a symlink or a device is invalid); a manifest.json that
// is not the one the statement seals; a statement.json that is not the
// signed one; subjects that disagree with the manifest; a broken custody
// chain, a changed sealed part, an unsigned or badly signed entry after
// sealing; a signature missing, by another key, or not verifying. The
// signed statement is the reference: with the key, a bundle whose files,
// manifest and statement were all rewritten to agree is shown file by file.
//
// Outcomes: Verified (everything holds and the signatures verified with the
// key given), NotChecked (hashes and custody hold, but no key was given:
// without one, anyone could have rewritten a bundle consistently, so kir
// says the signature was not checked, exit code 8) and Failed (exit code 7).
//
// # Shipping
//
// Pack writes a deterministic .tar.gz: entries sorted, relative to the
// bundle's root, modes kept, mtimes at the epoch, uid/gid 0, no owner names;
// the same bundle packs to the same bytes. Push uploads it as an OCI
// artifact: an image manifest with artifactType
// application/vnd.kir.evidence.v1+json, a config blob of that media type
// (incident, seal time, file count), and one layer, the packed bundle, of
// media type application/vnd.kir.evidence.bundle.v1.tar+gzip. Pull fetches
// it by tag or digest, checks the layer's digest, and unpacks it refusing
// any path outside the target, links and devices; nothing appears at the
// target unless all of it succeeded. Pull proves the transfer; Verify proves
// the evidence.
package evidence
