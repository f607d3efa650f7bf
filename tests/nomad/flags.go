package nomad

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var flagName = regexp.MustCompile(`^--?[A-Za-z][A-Za-z0-9_.-]*(=.*)?$`)

// Flags are the flags a program's --help lists, by every spelling the program accepts.
type Flags map[string]Flag

// Flag is one flag.
type Flag struct {
	Name       string // as listed, e.g. "--config" or "-config"
	TakesValue bool
	// Type is the value's type as the help shows it ("string", "duration", "int", "<file>").
	Type string
}

// ParseHelp reads the flags from a --help text in any of the three shapes our binaries print:
// Go's flag package ("  -creds string" with the usage on the next line), cobra/pflag
// ("  -n, --namespace string   usage") and nats-server ("    -c, --config <file>   usage").
// Go's flag package accepts -name and --name alike, so a single-dash long name is listed under
// both spellings.
func ParseHelp(help string) Flags {
	flags := Flags{}
	for _, line := range strings.Split(help, "\n") {
		s := strings.TrimLeft(line, " \t")
		if !strings.HasPrefix(s, "-") || !strings.HasPrefix(line, " ") {
			continue
		}
		// The flag part ends at a tab or at a run of two spaces, where the usage starts.
		if i := strings.Index(s, "\t"); i >= 0 {
			s = s[:i]
		}
		if i := strings.Index(s, "  "); i >= 0 {
			s = s[:i]
		}
		if !flagName.MatchString(strings.TrimSuffix(strings.Fields(s)[0], ",")) {
			continue // a line of prose that starts with a dash
		}
		var names []string
		typ := ""
		for _, tok := range strings.Fields(s) {
			tok = strings.TrimSuffix(tok, ",")
			if strings.HasPrefix(tok, "-") {
				names = append(names, strings.SplitN(tok, "=", 2)[0])
			} else {
				typ = tok // a type ("string", "duration") or a placeholder ("<file>")
			}
		}
		for _, n := range names {
			flags[n] = Flag{Name: n, TakesValue: typ != "", Type: typ}
			if !strings.HasPrefix(n, "--") && len(n) > 2 {
				flags["-"+n] = Flag{Name: n, TakesValue: typ != "", Type: typ}
			}
		}
	}
	return flags
}

// Names are the listed spellings, sorted.
func (f Flags) Names() []string {
	var out []string
	for k, v := range f {
		if k == v.Name {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Check checks args (what follows the command path) against the flags, and reports every
// problem at once. Every argument must be a known flag or a flag's value: none of the programs
// the jobspecs run takes a positional argument, and Go's flag package would stop at the first
// one and ignore every flag after it. Values of duration, int and bool flags must parse.
func (f Flags) Check(args []string) error {
	var errs []error
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			errs = append(errs, fmt.Errorf("argument %q is not a flag (no positional arguments are accepted here)", a))
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		fl, ok := f[name]
		if !ok {
			errs = append(errs, fmt.Errorf("flag %s is not accepted (the program lists: %s)", name, strings.Join(f.Names(), " ")))
			// Skip what looks like its value, so that one unknown flag gives one error.
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
			}
			continue
		}
		switch {
		case fl.TakesValue && !hasValue:
			if i+1 == len(args) {
				errs = append(errs, fmt.Errorf("flag %s needs a value", name))
				continue
			}
			i++
			value = args[i]
		case !fl.TakesValue && hasValue:
			if _, err := strconv.ParseBool(value); err != nil {
				errs = append(errs, fmt.Errorf("flag %s takes no value, got %q", name, value))
			}
			continue
		case !fl.TakesValue:
			continue
		}
		if err := checkValue(fl.Type, value); err != nil {
			errs = append(errs, fmt.Errorf("flag %s %s: %w", name, value, err))
		}
	}
	return errors.Join(errs...)
}

func checkValue(typ, value string) error {
	var err error
	switch typ {
	case "duration":
		_, err = time.ParseDuration(value)
	case "int":
		_, err = strconv.Atoi(value)
	}
	return err
}

// CheckCommand runs bin with argv's command path (its leading words, as in `skiff cluster
// bootstrap`) and --help, and checks argv's flags against what that help lists. bin is the
// built binary standing in for argv[0].
func CheckCommand(ctx context.Context, bin string, argv []string) error {
	var words []string
	rest := argv[1:]
	for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		words = append(words, rest[0])
		rest = rest[1:]
	}
	help, err := Help(ctx, bin, words)
	if err != nil {
		return err
	}
	prog := filepath.Base(argv[0])
	if len(words) > 0 {
		// cobra prints its parent's help for an unknown command and exits 0: the Usage lines
		// tell whether the command exists.
		want := prog + " " + strings.Join(words, " ")
		if !usageNames(help, want) {
			return fmt.Errorf("%s has no command %q (`%s --help` does not show its usage)", prog, strings.Join(words, " "), want)
		}
	}
	flags := ParseHelp(help)
	if len(flags) == 0 {
		return fmt.Errorf("`%s %s --help` lists no flags:\n%s", prog, strings.Join(words, " "), help)
	}
	if err := flags.Check(rest); err != nil {
		return fmt.Errorf("%s: %w", strings.TrimSpace(prog+" "+strings.Join(words, " ")), err)
	}
	return nil
}

// Help is the output of `bin words... --help`. Go's flag package exits 2 after printing its
// help, cobra 0; neither status means anything here.
func Help(ctx context.Context, bin string, words []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(words, "--help")...).CombinedOutput()
	if ctx.Err() != nil {
		return "", fmt.Errorf("%s %s --help: %w", bin, strings.Join(words, " "), ctx.Err())
	}
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		return "", fmt.Errorf("%s --help: %w", bin, err)
	}
	return string(out), nil
}

func usageNames(help, cmd string) bool {
	for _, line := range strings.Split(help, "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimPrefix(line, "Usage:")
		line = strings.TrimSpace(line)
		if line == cmd || strings.HasPrefix(line, cmd+" ") {
			return true
		}
	}
	return false
}
