package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/playbooks"
)

const (
	flagStateDir     = "state-dir"
	flagPlaybooksDir = "playbooks-dir"
	flagPlaybook     = "playbook"
)

// stateOptions say where kir keeps its run journals and evidence.
type stateOptions struct{ dir string }

func (o *stateOptions) flag() cli.Flag {
	return &cli.StringFlag{Name: flagStateDir, Usage: "where kir keeps its run journals (default $XDG_STATE_HOME/kir or ~/.local/state/kir)", EnvVars: envVars("KIR_STATE_DIR"), Destination: &o.dir}
}

// path is the state directory.
func (o *stateOptions) path() (string, error) {
	if o.dir != "" {
		return o.dir, nil
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "kir"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", usageError{errors.New("no home directory: give --state-dir or KIR_STATE_DIR")}
	}
	return filepath.Join(home, ".local", "state", "kir"), nil
}

// engine returns the playbook engine with the run journal.
func (o *stateOptions) engine() (*playbooks.Engine, error) {
	dir, err := o.path()
	if err != nil {
		return nil, err
	}
	runs, err := playbooks.OpenRuns(filepath.Join(dir, "runs"))
	if err != nil {
		return nil, err
	}
	return &playbooks.Engine{
		Actions: registry(), Runs: runs, Evidence: filepath.Join(dir, "evidence"),
		Version: Version, Observe: testHook(),
	}, nil
}

// playbookOptions say where the user's playbooks and the run journal live.
type playbookOptions struct {
	dir   string
	files cli.StringSlice
	state stateOptions
	// guard guards the runs started; only the commands that act on pods
	// or nodes add its flags.
	guard guardOptions
	// approval decides on the steps that need approval; only the
	// commands that can reach one add its --yes.
	approval approvalOptions
}

func (o *playbookOptions) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagPlaybooksDir, Usage: "directory of playbooks (*.yaml) that add to or override the built-in ones", EnvVars: envVars("KIR_PLAYBOOKS_DIR"), Destination: &o.dir},
		&cli.StringSliceFlag{Name: flagPlaybook, Usage: "playbook file that adds to or overrides the built-in ones and --playbooks-dir (repeatable)", Destination: &o.files},
		o.state.flag(),
	}
}

// library loads the built-in playbooks and the user's.
func (o *playbookOptions) library() (*playbooks.Library, error) {
	var dirs []string
	if o.dir != "" {
		dirs = append(dirs, o.dir)
	}
	lib, err := playbooks.NewLibrary(registry(), playbooks.Sources{Dirs: dirs, Files: o.files.Value()})
	if err != nil {
		return nil, usageError{err}
	}
	return lib, nil
}

// find returns the named playbook of the library.
func (o *playbookOptions) find(name string) (*playbooks.Entry, error) {
	lib, err := o.library()
	if err != nil {
		return nil, err
	}
	return entry(lib, name)
}

func entry(lib *playbooks.Library, name string) (*playbooks.Entry, error) {
	e, ok := lib.Get(name)
	if !ok {
		return nil, usageError{fmt.Errorf("no playbook named %s (have: %s)", name, strings.Join(lib.Names(), ", "))}
	}
	return e, nil
}

// start runs the named playbook with the parameters the command's flags
// and arguments set, and returns its run.
func (o *playbookOptions) start(c *cli.Context, s *session, name string, params []param) (*playbooks.Run, error) {
	e, err := o.find(name)
	if err != nil {
		return nil, err
	}
	given, err := bind(c, e, params)
	if err != nil {
		return nil, err
	}
	return o.startWith(c, s, e, given)
}

// startWith runs the playbook with parameters already bound.
func (o *playbookOptions) startWith(c *cli.Context, s *session, e *playbooks.Entry, given map[string]any) (*playbooks.Run, error) {
	eng, err := o.state.engine()
	if err != nil {
		return nil, err
	}
	eng.Guard = o.guard.guard().Check
	eng.Approvals = o.approval.approvals(c, s)
	env := s.env
	env.KirNamespace = o.guard.namespace
	return eng.Start(c.Context, playbooks.Request{Playbook: e.Playbook, Params: given, Env: env})
}

// run is start, then the report: what most commands do.
func (o *playbookOptions) run(c *cli.Context, s *session, command, name string, params []param) error {
	run, err := o.start(c, s, name, params)
	if err != nil {
		return err
	}
	return s.report(c, command, run)
}

// report prints a run's report and returns the command's error.
func (s *session) report(c *cli.Context, command string, run *playbooks.Run) error {
	err := runError(run)
	if perr := printReport(c.App.Writer, s.format, reportOf(command, run)); perr != nil && err == nil {
		err = perr
	}
	return err
}
