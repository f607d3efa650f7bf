package nomad_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/tests/nomad"
)

// TestPlace places every job on four VMs of which three are marked for NATS.
func TestPlace(t *testing.T) {
	_, nodes := fakeDatacenter()
	nodes = append(nodes, nomad.Node{Name: "n4", Address: "10.0.0.4"})
	jobs := loadJobs(t)
	want := map[string]map[string][]string{
		"nats.nomad.hcl":            {"nats": {"n1", "n2", "n3"}},
		"skiff-bootstrap.nomad.hcl": {"bootstrap": {"n1"}},
		"skiff-scheduler.nomad.hcl": {"scheduler": {"n1", "n2"}},
		"skiff-node.nomad.hcl":      {"node": {"n1", "n2", "n3", "n4"}},
	}
	got := map[string]map[string][]string{}
	for file, j := range jobs {
		placed, err := nomad.Place(j, nodes)
		if err != nil {
			t.Fatal(err)
		}
		got[file] = map[string][]string{}
		for g, ns := range placed {
			for _, n := range ns {
				got[file][g] = append(got[file][g], n.Name)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("placements (-want +got):\n%s", diff)
	}

	// Only two VMs marked: NATS cannot get its three distinct servers.
	nodes[2].Meta = nil
	_, err := nomad.Place(jobs["nats.nomad.hcl"], nodes)
	if err == nil || !strings.Contains(err.Error(), "group nats needs 3 node(s), 2 feasible") || !strings.Contains(err.Error(), `n3: constraint not met: meta.skiff_nats = true (node has "")`) {
		t.Errorf("Place with two NATS VMs: %v", err)
	}
}
