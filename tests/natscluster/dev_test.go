package natscluster

import (
	"flag"
	"os"
)

// -dev runs the tests on a TLS cluster without authentication (devConfig), for working on the
// harness without `skiff cluster init`.
var devMode = flag.Bool("dev", false, "use a hand-written TLS config without auth")

func init() {
	for _, a := range os.Args {
		if a == "-dev" || a == "-dev=true" || a == "-test.dev" {
			configure = (*Cluster).devConfig
		}
	}
}

// creds is c.Creds(name), or none in -dev mode.
func creds(c *Cluster, name string) string {
	if configure != nil && *devMode {
		return ""
	}
	return c.Creds(name)
}
