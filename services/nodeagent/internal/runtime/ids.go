package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strconv"
	"time"
)

// Labels put on every containerd container this package makes.
const (
	LabelKind          = "skiff.dev/kind" // KindSandbox or KindContainer
	LabelPodUID        = "skiff.dev/pod-uid"
	LabelPodName       = "skiff.dev/pod-name"
	LabelPodNamespace  = "skiff.dev/pod-namespace"
	LabelContainerName = "skiff.dev/container-name"
	LabelRestartCount  = "skiff.dev/restart-count"
	// LabelStartedAt records when the task was started (RFC 3339, UTC):
	// containerd keeps the exit time of a task but not its start time.
	LabelStartedAt = "skiff.dev/started-at"
	// LabelLogPath is the container's current log file.
	LabelLogPath = "skiff.dev/log-path"
)

// Kind says whether a containerd container is a pod's sandbox or one of its
// app containers.
type Kind string

const (
	KindSandbox   Kind = "sandbox"
	KindContainer Kind = "container"
)

// PodRef identifies the pod a sandbox or container belongs to.
type PodRef struct {
	UID       string
	Name      string
	Namespace string
}

func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

// SandboxID is the containerd container ID of the sandbox of the pod with
// the given UID.
func SandboxID(podUID string) string {
	return hashID("sandbox", podUID)
}

// ContainerID is the containerd container ID of the named container of the
// pod with the given UID. It does not depend on the restart count: a pod
// never has two containerd containers for one container name.
func ContainerID(podUID, containerName string) string {
	return hashID("container", podUID, containerName)
}

// hashID is 32 hex digits (128 bits) of a hash of the parts: fixed length,
// valid as a containerd ID whatever the names contain, and collision-free
// for any realistic number of pods.
func hashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func podLabels(p PodRef, kind Kind) map[string]string {
	return map[string]string{
		LabelKind:         string(kind),
		LabelPodUID:       p.UID,
		LabelPodName:      p.Name,
		LabelPodNamespace: p.Namespace,
	}
}

func podFromLabels(l map[string]string) PodRef {
	return PodRef{UID: l[LabelPodUID], Name: l[LabelPodName], Namespace: l[LabelPodNamespace]}
}

func restartFromLabels(l map[string]string) int {
	n, _ := strconv.Atoi(l[LabelRestartCount])
	return n
}

func timeFromLabel(l map[string]string, key string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, l[key])
	return t
}

// podLogDir is the directory of a pod's logs, named like the kubelet's
// /var/log/pods/<namespace>_<name>_<uid>.
func podLogDir(root string, p PodRef) string {
	return filepath.Join(root, p.Namespace+"_"+p.Name+"_"+p.UID)
}

// LogPath is the log file of one run of a container.
func LogPath(logDir string, p PodRef, containerName string, restartCount int) string {
	return filepath.Join(podLogDir(logDir, p), containerName, strconv.Itoa(restartCount)+".log")
}
