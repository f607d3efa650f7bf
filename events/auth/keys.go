package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"skiff.dev/events"
)

// Account names, as the servers' resolver_preload and the operator JWT know them.
const (
	AccountName       = "SKIFF"
	SystemAccountName = "SYS"
	operatorName      = "skiff"
)

// Files below a cluster directory that this package reads and writes. Seeds are secrets: mode
// 0600, and the operator's seed is best kept offline once the cluster runs.
const (
	OperatorSeedFile  = "keys/operator.nk"
	AccountSeedFile   = "keys/account.nk"
	SystemSeedFile    = "keys/system.nk"
	OperatorJWTFile   = "operator.jwt"
	AccountJWTFile    = "accounts/SKIFF.jwt"
	SystemAccountFile = "accounts/SYS.jwt"
)

// Keys are the cluster's signing keys and the account's revocations. Minting credentials needs
// only Account; signing account JWTs (and so revoking) needs Operator.
type Keys struct {
	Operator nkeys.KeyPair // signs the operator JWT and both account JWTs
	Account  nkeys.KeyPair // the SKIFF account: signs every Skiff user JWT
	System   nkeys.KeyPair // the SYS account: signs the system user (claim updates)

	// Revocations maps a user public key to the Unix time before which (inclusive) its JWTs
	// are refused. It is part of the SKIFF account JWT, so LoadKeys reads it back from there.
	Revocations jwt.RevocationList

	// Now is the clock for expiry times; nil means time.Now.
	Now func() time.Time

	// issuedAt and signed are the iat and the revocations of the newest SKIFF account JWT these
	// keys know: the one LoadKeys read, or the last AccountJWT signed.
	issuedAt int64
	signed   jwt.RevocationList
}

// NewKeys makes fresh operator, account and system keys.
func NewKeys() (*Keys, error) {
	op, err := nkeys.CreateOperator()
	if err != nil {
		return nil, fmt.Errorf("create operator key: %w", err)
	}
	acc, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("create account key: %w", err)
	}
	sys, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("create system account key: %w", err)
	}
	return &Keys{Operator: op, Account: acc, System: sys, Revocations: jwt.RevocationList{}}, nil
}

// LoadKeys reads the seeds below dir (see the *SeedFile constants) and the revocations in its
// account JWT. The account seed is required; the operator and system seeds may be missing (kept
// offline), which leaves those fields nil.
//
// Errors: events.ErrNotFound when the account seed is missing; events.ErrInvalidArgument when
// a file does not hold what it should.
func LoadKeys(dir string) (*Keys, error) {
	k := &Keys{Revocations: jwt.RevocationList{}}
	for _, f := range []struct {
		file     string
		kp       *nkeys.KeyPair
		prefix   nkeys.PrefixByte
		required bool
	}{
		{OperatorSeedFile, &k.Operator, nkeys.PrefixByteOperator, false},
		{AccountSeedFile, &k.Account, nkeys.PrefixByteAccount, true},
		{SystemSeedFile, &k.System, nkeys.PrefixByteAccount, false},
	} {
		path := filepath.Join(dir, f.file)
		seed, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) && !f.required {
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, events.Errorf(events.ErrNotFound, "%s does not exist: is %s a cluster directory made by `skiff cluster init`?", path, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
		if err != nil {
			return nil, events.Errorf(events.ErrInvalidArgument, "%s: not an nkey seed: %v", path, err)
		}
		if p := nkeys.Prefix(mustPublic(kp)); p != f.prefix {
			return nil, events.Errorf(events.ErrInvalidArgument, "%s: holds a %s key, want a %s key", path, p, f.prefix)
		}
		*f.kp = kp
	}
	path := filepath.Join(dir, AccountJWTFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	default:
		ac, err := jwt.DecodeAccountClaims(strings.TrimSpace(string(data)))
		if err != nil {
			return nil, events.Errorf(events.ErrInvalidArgument, "%s: not an account JWT: %v", path, err)
		}
		if ac.Subject != mustPublic(k.Account) {
			return nil, events.Errorf(events.ErrInvalidArgument, "%s is the JWT of account %s, but %s is the seed of %s",
				path, ac.Subject, AccountSeedFile, mustPublic(k.Account))
		}
		maps.Copy(k.Revocations, ac.Revocations)
		k.issuedAt, k.signed = ac.IssuedAt, ac.Revocations
	}
	return k, nil
}

// Save writes the seeds (0600) and the JWTs it can sign below dir, replacing what is there.
func (k *Keys) Save(dir string) error {
	write := func(file string, data []byte, mode fs.FileMode) error {
		path := filepath.Join(dir, file)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		return WriteFile(path, data, mode)
	}
	for _, s := range []struct {
		file string
		kp   nkeys.KeyPair
	}{{OperatorSeedFile, k.Operator}, {AccountSeedFile, k.Account}, {SystemSeedFile, k.System}} {
		if s.kp == nil {
			continue
		}
		seed, err := s.kp.Seed()
		if err != nil {
			return fmt.Errorf("seed for %s: %w", s.file, err)
		}
		if err := write(s.file, append(seed, '\n'), 0o600); err != nil {
			return err
		}
	}
	if k.Operator == nil {
		return nil
	}
	for _, j := range []struct {
		file string
		sign func() (string, error)
	}{{OperatorJWTFile, k.OperatorJWT}, {AccountJWTFile, k.AccountJWT}, {SystemAccountFile, k.SystemAccountJWT}} {
		if j.file == SystemAccountFile && k.System == nil {
			continue
		}
		token, err := j.sign()
		if err != nil {
			return err
		}
		if err := write(j.file, []byte(token+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// WriteFile writes data to path with mode through a temporary file and a rename, so a reader
// never sees half a file and a secret is never readable by others, even briefly.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (k *Keys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *Keys) needOperator() error {
	if k.Operator == nil {
		return events.Errorf(events.ErrFailedPrecondition, "the operator key (%s) is needed to sign account JWTs", OperatorSeedFile)
	}
	return nil
}

// OperatorJWT is the self-signed operator JWT that every server trusts; it names the system
// account.
func (k *Keys) OperatorJWT() (string, error) {
	if err := k.needOperator(); err != nil {
		return "", err
	}
	oc := jwt.NewOperatorClaims(mustPublic(k.Operator))
	oc.Name = operatorName
	if k.System != nil {
		oc.SystemAccount = mustPublic(k.System)
	}
	token, err := oc.Encode(k.Operator)
	if err != nil {
		return "", fmt.Errorf("sign operator JWT: %w", err)
	}
	return token, nil
}

// AccountJWT is the SKIFF account's JWT: JetStream enabled without limits (the log's size is
// bounded by the stream's own limits), and the revocations.
func (k *Keys) AccountJWT() (string, error) {
	if err := k.needOperator(); err != nil {
		return "", err
	}
	ac := jwt.NewAccountClaims(mustPublic(k.Account))
	ac.Name = AccountName
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit,
	}
	if len(k.Revocations) > 0 {
		ac.Revocations = maps.Clone(k.Revocations)
	}
	// The servers' resolvers order versions of an account JWT by iat, in whole seconds, and take
	// an equal one as newer: two different versions signed in one second could swap back when
	// the servers sync, undoing a revocation. So a version that changes the revocations waits
	// for the next second (iat is the clock at signing).
	if !maps.Equal(k.Revocations, k.signed) {
		if wait := time.Until(time.Unix(k.issuedAt+1, 0)); wait > 0 {
			time.Sleep(wait)
		}
	}
	token, err := ac.Encode(k.Operator)
	if err != nil {
		return "", fmt.Errorf("sign account JWT: %w", err)
	}
	k.issuedAt, k.signed = ac.IssuedAt, maps.Clone(k.Revocations)
	return token, nil
}

// SystemAccountJWT is the SYS account's JWT.
func (k *Keys) SystemAccountJWT() (string, error) {
	if err := k.needOperator(); err != nil {
		return "", err
	}
	if k.System == nil {
		return "", events.Errorf(events.ErrFailedPrecondition, "the system account key (%s) is missing", SystemSeedFile)
	}
	ac := jwt.NewAccountClaims(mustPublic(k.System))
	ac.Name = SystemAccountName
	token, err := ac.Encode(k.Operator)
	if err != nil {
		return "", fmt.Errorf("sign system account JWT: %w", err)
	}
	return token, nil
}

// UserCreds mints a creds file (JWT and seed, nats' format) for role's user called name,
// signed by the account key; expiry 0 means it never expires. A new server needs no change to
// accept it: servers trust whatever the account key signs.
//
// Errors: events.ErrInvalidArgument for a name Identity refuses.
func (k *Keys) UserCreds(role Role, name string, expiry time.Duration) ([]byte, error) {
	var expires time.Time
	if expiry > 0 {
		expires = k.now().Add(expiry)
	}
	return k.userCreds(role, name, expires)
}

func (k *Keys) userCreds(role Role, name string, expires time.Time) ([]byte, error) {
	id, err := Identity(role, name)
	if err != nil {
		return nil, err
	}
	perms, err := Permissions(role, name)
	if err != nil {
		return nil, err
	}
	if k.Account == nil {
		return nil, events.Errorf(events.ErrFailedPrecondition, "the account key (%s) is needed to mint credentials", AccountSeedFile)
	}
	uc, seed, err := newUser(id)
	if err != nil {
		return nil, err
	}
	uc.Tags.Add(roleTag + string(role))
	uc.Permissions = perms
	if !expires.IsZero() {
		uc.Expires = expires.Unix()
	}
	return encodeCreds(uc, k.Account, seed)
}

// SystemCreds mints the creds of the system account's user, which may push account JWT updates
// ($SYS.REQ.CLAIMS.UPDATE) to running servers.
func (k *Keys) SystemCreds() ([]byte, error) {
	if k.System == nil {
		return nil, events.Errorf(events.ErrFailedPrecondition, "the system account key (%s) is needed for system credentials", SystemSeedFile)
	}
	uc, seed, err := newUser("sys")
	if err != nil {
		return nil, err
	}
	return encodeCreds(uc, k.System, seed)
}

// Revoke refuses, from now on, every JWT of the user with public key userPublicKey issued at
// or before at, and returns the account JWT carrying the revocation. Servers learn it when the
// JWT is pushed to them ($SYS.REQ.CLAIMS.UPDATE); they then close the user's connections.
func (k *Keys) Revoke(userPublicKey string, at time.Time) (string, error) {
	if !nkeys.IsValidPublicUserKey(userPublicKey) {
		return "", events.Errorf(events.ErrInvalidArgument, "%q is not a user public key", userPublicKey)
	}
	if k.Revocations == nil {
		k.Revocations = jwt.RevocationList{}
	}
	k.Revocations.Revoke(userPublicKey, at)
	return k.AccountJWT()
}

const roleTag = "role:"

func newUser(name string) (*jwt.UserClaims, []byte, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, nil, fmt.Errorf("create user key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, nil, fmt.Errorf("create user key: %w", err)
	}
	uc := jwt.NewUserClaims(mustPublic(kp))
	uc.Name = name
	return uc, seed, nil
}

func encodeCreds(uc *jwt.UserClaims, signer nkeys.KeyPair, seed []byte) ([]byte, error) {
	token, err := uc.Encode(signer)
	if err != nil {
		return nil, fmt.Errorf("sign user JWT for %s: %w", uc.Name, err)
	}
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		return nil, fmt.Errorf("format creds for %s: %w", uc.Name, err)
	}
	return creds, nil
}

func mustPublic(kp nkeys.KeyPair) string {
	pub, err := kp.PublicKey()
	if err != nil {
		// Only a wiped key pair has no public key; that is a bug here, not bad input.
		panic(fmt.Sprintf("nkey without public key: %v", err))
	}
	return pub
}
