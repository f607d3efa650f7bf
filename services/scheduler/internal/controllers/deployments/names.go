package deployments

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"

	"skiff.dev/events"
)

// TemplateHashLabel marks each pod with the hash of the template it was made from, as Kubernetes
// does; the controller tells old pods from new ones by it.
const TemplateHashLabel = "pod-template-hash"

// safeAlphabet has no vowels (no words in names) and no look-alikes, as Kubernetes' name
// suffixes; 27 letters.
const safeAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// hashLen is the length of a template hash in pod names.
const hashLen = 10

// TemplateHash is a 10-character hash of a pod template. It covers everything in the template but
// the hash label itself, so a pod made from the template hashes the same as the template.
func TemplateHash(t events.PodTemplateSpec) string {
	if _, ok := t.Metadata.Labels[TemplateHashLabel]; ok {
		labels := make(map[string]string, len(t.Metadata.Labels))
		for k, v := range t.Metadata.Labels {
			if k != TemplateHashLabel {
				labels[k] = v
			}
		}
		t.Metadata.Labels = labels
	}
	// encoding/json writes map keys sorted, so equal templates encode equally.
	b, err := json.Marshal(t)
	if err != nil {
		// A template that came from the log always encodes; keep going with a stable value.
		b = []byte(fmt.Sprint(err))
	}
	h := fnv.New64a()
	h.Write(b)
	return encode(h.Sum64(), hashLen)
}

func encode(v uint64, n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(safeAlphabet[v%uint64(len(safeAlphabet))])
		v /= uint64(len(safeAlphabet))
	}
	return b.String()
}

// maxNameLen is the longest object name: names are DNS-1123 labels, since they are subject tokens.
const maxNameLen = 63

// PodName is "<deployment>-<hash>-<5 random characters>", with the deployment's name cut so the
// whole stays a DNS-1123 label.
func PodName(deployment, hash string) string {
	prefix := deployment
	if limit := maxNameLen - len(hash) - 7; len(prefix) > limit {
		prefix = strings.TrimRight(prefix[:limit], "-")
	}
	return prefix + "-" + hash + "-" + randomSuffix(5)
}

func randomSuffix(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics instead)
	for i := range b {
		b[i] = safeAlphabet[int(b[i])%len(safeAlphabet)]
	}
	return string(b)
}

// newUID returns a random (version 4) UUID, the shape of Kubernetes' UIDs.
func newUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
