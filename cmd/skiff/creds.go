package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"skiff.dev/events"
	"skiff.dev/events/auth"
	"skiff.dev/events/client"
)

func init() {
	register(func(a *app) *cobra.Command { return newCredsGroup(a, auth.RoleNode) })
	register(func(a *app) *cobra.Command { return newCredsGroup(a, auth.RoleUser) })
}

// newCredsGroup is `skiff node` or `skiff user`, with creds and revoke.
func newCredsGroup(a *app, role auth.Role) *cobra.Command {
	what, whatUpper := "node", "NODE"
	short := "Mint and revoke the credentials of nodes"
	if role == auth.RoleUser {
		what, whatUpper = "user", "NAME"
		short = "Mint and revoke the credentials of people using the CLI"
	}
	var dir, out string
	var expiry time.Duration
	creds := &cobra.Command{
		Use:   "creds " + whatUpper + " --dir DIR",
		Short: "Mint the credentials and client configuration of a " + what,
		Long: "creds signs a new " + what + " user JWT with the cluster's account key (DIR/" + auth.AccountSeedFile + ") and writes\n" +
			"creds/" + what + "-" + whatUpper + ".creds and config/" + what + "-" + whatUpper + ".yaml. The servers need no change: they trust\n" +
			"whatever the account key signs.",
		Args: argsRange(1, 1, whatUpper),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.mintCreds(cmd, role, args, dir, out, expiry)
		},
	}
	if role == auth.RoleNode {
		creds.Use = "creds NODE... --dir DIR"
		creds.Args = argsRange(1, math.MaxInt, "NODE...")
	}
	f := creds.Flags()
	f.StringVar(&dir, "dir", "", "the cluster directory made by `skiff cluster init` (required)")
	f.StringVar(&out, "out", "", "write creds/ and config/ (and a copy of ca.pem) here instead of into --dir")
	f.DurationVar(&expiry, "expiry", 0, "how long the credentials are valid (0: until revoked)")

	var revokeDir, revokeCreds string
	revoke := &cobra.Command{
		Use:   "revoke " + whatUpper + " --dir DIR",
		Short: "Refuse a " + what + "'s credentials from now on, on the running servers too",
		Long: "revoke adds the public key of DIR/creds/" + what + "-" + whatUpper + ".creds to the revocations of the account JWT\n" +
			"(DIR/" + auth.AccountJWTFile + ", signed again with DIR/" + auth.OperatorSeedFile + ") and pushes it to the servers with\n" +
			"DIR/" + sysCredsFile + "; they close the " + what + "'s connections and refuse it from then on.",
		Args: argsRange(1, 1, whatUpper),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.revokeCreds(cmd, role, args[0], revokeDir, revokeCreds)
		},
	}
	revoke.Flags().StringVar(&revokeDir, "dir", "", "the cluster directory made by `skiff cluster init` (required)")
	revoke.Flags().StringVar(&revokeCreds, "creds", "", "the creds file to revoke, if not the one in DIR/creds (minted with --out)")
	return group(what, short, creds, revoke)
}

// loadKeys loads a cluster directory's keys with an error that says what the directory lacks.
func loadKeys(cmd *cobra.Command, dir string) (*auth.Keys, error) {
	if dir == "" {
		return nil, usage(cmd, "--dir is required: the cluster directory made by `skiff cluster init`")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, errorf(events.ErrNotFound, "cluster directory %s does not exist: make one with `skiff cluster init --dir %s`", dir, dir)
	}
	return auth.LoadKeys(dir)
}

func (a *app) mintCreds(cmd *cobra.Command, role auth.Role, names []string, dir, out string, expiry time.Duration) error {
	for _, n := range names {
		if _, err := auth.Identity(role, n); err != nil {
			return usage(cmd, "%s", message(err))
		}
	}
	if expiry < 0 {
		return usage(cmd, "--expiry must not be negative")
	}
	keys, err := loadKeys(cmd, dir)
	if err != nil {
		return err
	}
	keys.Now = a.Now
	admin, err := client.ReadConfig(filepath.Join(dir, configDir, "admin.yaml"))
	if err != nil {
		return errorf(events.ErrNotFound, "the server URLs of the cluster are in %s, which cannot be read: %v", filepath.Join(dir, configDir, "admin.yaml"), err)
	}
	if out == "" {
		out = dir
	}
	ca := filepath.Join(dir, caFile)
	if out != dir {
		data, err := os.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("cluster CA: %w", err)
		}
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		ca = filepath.Join(out, caFile)
		if err := os.WriteFile(ca, data, 0o644); err != nil {
			return err
		}
	}
	for _, n := range names {
		creds, err := keys.UserCreds(role, n, expiry)
		if err != nil {
			return err
		}
		credsPath, configPath := credsFiles(string(role) + "-" + n)
		if err := writeSecret(filepath.Join(out, credsPath), creds); err != nil {
			return err
		}
		if err := writeClientConfig(filepath.Join(out, configPath), admin.Server, filepath.Join(out, credsPath), ca); err != nil {
			return err
		}
		id, _ := auth.Identity(role, n)
		valid := "until revoked"
		if expiry > 0 {
			valid = "until " + a.Now().Add(expiry).UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(a.Stdout, "%s: wrote %s and %s (valid %s)\n", id, filepath.Join(out, credsPath), filepath.Join(out, configPath), valid)
	}
	return nil
}

func (a *app) revokeCreds(cmd *cobra.Command, role auth.Role, name, dir, credsPath string) error {
	id, err := auth.Identity(role, name)
	if err != nil {
		return usage(cmd, "%s", message(err))
	}
	keys, err := loadKeys(cmd, dir)
	if err != nil {
		return err
	}
	if credsPath == "" {
		credsPath, _ = credsFiles(string(role) + "-" + name)
		credsPath = filepath.Join(dir, credsPath)
	}
	c, err := auth.ReadCreds(credsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return errorf(events.ErrNotFound, "%s does not exist: no credentials of %s were minted in %s (name the file with --creds)", credsPath, id, dir)
	}
	if err != nil {
		return err
	}
	if c.Identity != id {
		return errorf(events.ErrFailedPrecondition, "%s holds the credentials of %s, not %s", credsPath, c.Identity, id)
	}
	token, err := keys.Revoke(c.PublicKey, a.Now())
	if err != nil {
		return err
	}
	if err := auth.WriteFile(filepath.Join(dir, auth.AccountJWTFile), []byte(token+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(a.Stdout, "%s: revoked %s in %s\n", id, c.PublicKey, filepath.Join(dir, auth.AccountJWTFile))
	n, total, err := pushAccount(cmd.Context(), dir, token, a.timeout)
	if err != nil {
		return fmt.Errorf("the revocation is in %s but could not be pushed to the servers: %w (run the revoke again when they are up)",
			filepath.Join(dir, auth.AccountJWTFile), err)
	}
	fmt.Fprintf(a.Stdout, "pushed the account JWT to %d of %d servers\n", n, total)
	if n < total {
		fmt.Fprintf(a.Stdout, "the others learn it from their peers (resolver type full) or when you run the revoke again\n")
	}
	return nil
}

// pushAccount sends the account JWT to the running servers as the system user. Every server
// answers $SYS.REQ.CLAIMS.UPDATE, so it collects one answer per server.
func pushAccount(ctx context.Context, dir, token string, timeout time.Duration) (updated, total int, err error) {
	cfg, err := client.ReadConfig(filepath.Join(dir, configDir, "admin.yaml"))
	if err != nil {
		return 0, 0, fmt.Errorf("server URLs: %w", err)
	}
	total = len(strings.Split(cfg.Server, ","))
	sysCreds := filepath.Join(dir, sysCredsFile)
	opts := []nats.Option{nats.UserCredentials(sysCreds), nats.Name("skiff revoke"), nats.MaxReconnects(0), nats.Timeout(5 * time.Second)}
	if cfg.CA != "" {
		opts = append(opts, nats.RootCAs(cfg.CA))
	}
	nc, err := nats.Connect(cfg.Server, opts...)
	if err != nil {
		return 0, total, events.Errorf(events.ErrUnavailable, "connect to %s: %v", cfg.Server, auth.ExplainConnectError(err, sysCreds))
	}
	defer nc.Close()
	inbox := nc.NewInbox()
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, total, err
	}
	if err := nc.PublishRequest("$SYS.REQ.CLAIMS.UPDATE", inbox, []byte(token)); err != nil {
		return 0, total, err
	}
	if timeout <= 0 || timeout > 5*time.Second {
		timeout = 5 * time.Second
	}
	deadline := time.Now().Add(timeout)
	var refusals []string
	for updated+len(refusals) < total {
		wait := time.Until(deadline)
		if wait <= 0 || ctx.Err() != nil {
			break
		}
		m, err := replies.NextMsg(wait)
		if err != nil {
			break
		}
		var r struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if json.Unmarshal(m.Data, &r) == nil && r.Error != nil {
			refusals = append(refusals, r.Error.Description)
			continue
		}
		updated++
	}
	if len(refusals) > 0 {
		return updated, total, events.Errorf(events.ErrFailedPrecondition, "a server refused the account JWT: %s", refusals[0])
	}
	if updated == 0 {
		return 0, total, events.Errorf(events.ErrUnavailable, "no server answered within %v", timeout)
	}
	return updated, total, nil
}
