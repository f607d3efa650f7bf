package scheduler

import "github.com/nats-io/nats.go/jetstream"

// Appender is what each control loop writes through.
type Appender = appender

// WithHooks returns cfg whose replica runs its leader key and its loops' logs through the given
// wrappers (either may be nil).
func WithHooks(cfg Config, leaderKV func(jetstream.KeyValue) jetstream.KeyValue, log func(loop string, l Appender) Appender) Config {
	cfg.hooks = &hooks{leaderKV: leaderKV, log: log}
	return cfg
}
