package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// The object types below have the JSON shape of their Kubernetes namesakes, for the subset of
// fields Skiff supports (docs/manifests.md). Manifests decode into them and `skiff get -o json`
// prints them, so people can use what they already write and read.

// TypeMeta is apiVersion and kind.
type TypeMeta struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
}

// ObjectMeta is the metadata every object has.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	DeletionTimestamp *time.Time        `json:"deletionTimestamp,omitempty"`
	OwnerReferences   []OwnerReference  `json:"ownerReferences,omitempty"`
}

// OwnerReference names the object that made this one (a Deployment for its pods).
type OwnerReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	Controller bool   `json:"controller,omitempty"`
}

// Pod is a v1 Pod.
type Pod struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     PodSpec    `json:"spec"`
	Status   PodStatus  `json:"status,omitempty"`
}

// PodSpec is the supported subset of a v1 PodSpec.
type PodSpec struct {
	// InitContainers run one after the other, each to success, before Containers start.
	InitContainers                []Container       `json:"initContainers,omitempty"`
	Containers                    []Container       `json:"containers"`
	RestartPolicy                 string            `json:"restartPolicy,omitempty"`
	TerminationGracePeriodSeconds *int64            `json:"terminationGracePeriodSeconds,omitempty"`
	NodeSelector                  map[string]string `json:"nodeSelector,omitempty"`
	Tolerations                   []Toleration      `json:"tolerations,omitempty"`
	NodeName                      string            `json:"nodeName,omitempty"`
	// Hostname is the pod's host name; default its name. Subdomain is recorded (the pod's
	// DNS name under a headless Service, for cluster DNS).
	Hostname  string `json:"hostname,omitempty"`
	Subdomain string `json:"subdomain,omitempty"`
}

// Restart policies.
const (
	RestartAlways    = "Always"
	RestartOnFailure = "OnFailure"
	RestartNever     = "Never"
)

// DefaultGracePeriodSeconds is Kubernetes' default terminationGracePeriodSeconds.
const DefaultGracePeriodSeconds = 30

// GracePeriodSeconds is the pod's termination grace period, defaulted.
func (s *PodSpec) GracePeriodSeconds() int64 {
	if s.TerminationGracePeriodSeconds == nil {
		return DefaultGracePeriodSeconds
	}
	return *s.TerminationGracePeriodSeconds
}

// Container is the supported subset of a v1 Container.
type Container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// ImagePullPolicy is Always, IfNotPresent or Never; empty means Kubernetes' default for
	// the image (images.DefaultPullPolicy), applied where it is used rather than written into
	// the log, so that a Deployment applied before the field existed is not a new template.
	ImagePullPolicy string               `json:"imagePullPolicy,omitempty"`
	Command         []string             `json:"command,omitempty"`
	Args            []string             `json:"args,omitempty"`
	Env             []EnvVar             `json:"env,omitempty"`
	WorkingDir      string               `json:"workingDir,omitempty"`
	Ports           []ContainerPort      `json:"ports,omitempty"`
	Resources       ResourceRequirements `json:"resources,omitempty"`
}

// Image pull policies, as Kubernetes names them.
const (
	PullAlways       = "Always"
	PullIfNotPresent = "IfNotPresent"
	PullNever        = "Never"
)

// EnvVar is an environment variable: a literal value, or one taken from the pod's own fields
// or its container's resources.
type EnvVar struct {
	Name      string        `json:"name"`
	Value     string        `json:"value,omitempty"`
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvVarSource is where an environment variable's value comes from: one of its fields.
type EnvVarSource struct {
	FieldRef         *ObjectFieldSelector   `json:"fieldRef,omitempty"`
	ResourceFieldRef *ResourceFieldSelector `json:"resourceFieldRef,omitempty"`
}

// ObjectFieldSelector names a field of the pod ("metadata.name", "status.podIP",
// "metadata.labels['app']").
type ObjectFieldSelector struct {
	APIVersion string `json:"apiVersion,omitempty"`
	FieldPath  string `json:"fieldPath"`
}

// ResourceFieldSelector names a container's request or limit ("limits.memory"), in units of
// Divisor (default 1: cores, bytes).
type ResourceFieldSelector struct {
	ContainerName string `json:"containerName,omitempty"`
	Resource      string `json:"resource"`
	Divisor       string `json:"divisor,omitempty"`
}

// ContainerPort is a port a container listens on.
type ContainerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
}

// ResourceRequirements holds requests and limits of "cpu" and "memory" as Kubernetes quantities.
type ResourceRequirements struct {
	Requests ResourceList `json:"requests,omitempty"`
	Limits   ResourceList `json:"limits,omitempty"`
}

// ResourceList maps a resource name ("cpu", "memory") to a quantity ("250m", "128Mi").
type ResourceList map[string]string

// Toleration lets a pod run on a node with a matching taint.
type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"`
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"`
	TolerationSeconds *int64 `json:"tolerationSeconds,omitempty"`
}

// Taint keeps pods off a node unless they tolerate it.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// String formats a taint the way kubectl does: key=value:Effect.
func (t Taint) String() string {
	s := t.Key
	if t.Value != "" {
		s += "=" + t.Value
	}
	return s + ":" + t.Effect
}

// Tolerates reports whether tol tolerates taint t (Kubernetes semantics).
func (tol Toleration) Tolerates(t Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key == "" {
		return tol.Operator == "Exists"
	}
	if tol.Key != t.Key {
		return false
	}
	if tol.Operator == "Exists" {
		return true
	}
	return tol.Value == t.Value
}

// Pod phases.
const (
	PodPending   = "Pending"
	PodRunning   = "Running"
	PodSucceeded = "Succeeded"
	PodFailed    = "Failed"
	PodUnknown   = "Unknown"
)

// PodStatus is what the pod's node reports, plus the scheduler's conditions.
type PodStatus struct {
	Phase                 string            `json:"phase,omitempty"`
	Reason                string            `json:"reason,omitempty"`
	Message               string            `json:"message,omitempty"`
	HostIP                string            `json:"hostIP,omitempty"`
	PodIP                 string            `json:"podIP,omitempty"`
	StartTime             *time.Time        `json:"startTime,omitempty"`
	Conditions            []Condition       `json:"conditions,omitempty"`
	InitContainerStatuses []ContainerStatus `json:"initContainerStatuses,omitempty"`
	ContainerStatuses     []ContainerStatus `json:"containerStatuses,omitempty"`
}

// Condition is a typed status condition (PodScheduled, Ready, Available, ...).
type Condition struct {
	Type               string     `json:"type"`
	Status             string     `json:"status"`
	Reason             string     `json:"reason,omitempty"`
	Message            string     `json:"message,omitempty"`
	LastTransitionTime *time.Time `json:"lastTransitionTime,omitempty"`
	// LastUpdateTime is when a Deployment's condition was last set with progress (Kubernetes'
	// DeploymentCondition field); other conditions leave it out.
	LastUpdateTime *time.Time `json:"lastUpdateTime,omitempty"`
}

// ContainerStatus is one container's state as its node reports it.
type ContainerStatus struct {
	Name                 string         `json:"name"`
	Image                string         `json:"image,omitempty"`
	Ready                bool           `json:"ready"`
	RestartCount         int32          `json:"restartCount"`
	ContainerID          string         `json:"containerID,omitempty"`
	State                ContainerState `json:"state,omitempty"`
	LastTerminationState ContainerState `json:"lastState,omitempty"`
}

// ContainerState has exactly one of its fields set.
type ContainerState struct {
	Waiting    *ContainerStateWaiting    `json:"waiting,omitempty"`
	Running    *ContainerStateRunning    `json:"running,omitempty"`
	Terminated *ContainerStateTerminated `json:"terminated,omitempty"`
}

// ContainerStateWaiting is a container not running yet, with why (ContainerCreating,
// ErrImageNotFound, CrashLoopBackOff, ...).
type ContainerStateWaiting struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// ContainerStateRunning is a running container.
type ContainerStateRunning struct {
	StartedAt *time.Time `json:"startedAt,omitempty"`
}

// ContainerStateTerminated is a container that exited.
type ContainerStateTerminated struct {
	ExitCode   int32      `json:"exitCode"`
	Signal     int32      `json:"signal,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Message    string     `json:"message,omitempty"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// Deployment is an apps/v1 Deployment.
type Deployment struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta       `json:"metadata"`
	Spec     DeploymentSpec   `json:"spec"`
	Status   DeploymentStatus `json:"status,omitempty"`
}

// DeploymentSpec is the supported subset of an apps/v1 DeploymentSpec.
type DeploymentSpec struct {
	Replicas *int32             `json:"replicas,omitempty"`
	Selector *LabelSelector     `json:"selector"`
	Template PodTemplateSpec    `json:"template"`
	Strategy DeploymentStrategy `json:"strategy,omitempty"`
	// MinReadySeconds is how long a pod must have been ready to count as available.
	MinReadySeconds int32 `json:"minReadySeconds,omitempty"`
	// RevisionHistoryLimit is accepted and kept: Skiff keeps no ReplicaSets, and a
	// Deployment's revisions are in the log.
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`
	// ProgressDeadlineSeconds is how long a rollout may make no progress before its
	// Progressing condition turns False (ProgressDeadlineExceeded); default 600.
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`
	// Paused stops rollouts: template changes wait until it is false; scaling goes on.
	Paused bool `json:"paused,omitempty"`
}

// DefaultProgressDeadlineSeconds is ProgressDeadlineSeconds' default, as in Kubernetes.
const DefaultProgressDeadlineSeconds = 600

// ProgressDeadline is spec.progressDeadlineSeconds, defaulted.
func (s *DeploymentSpec) ProgressDeadline() time.Duration {
	if s.ProgressDeadlineSeconds == nil {
		return DefaultProgressDeadlineSeconds * time.Second
	}
	return time.Duration(*s.ProgressDeadlineSeconds) * time.Second
}

// DesiredReplicas is spec.replicas, defaulted to 1.
func (s *DeploymentSpec) DesiredReplicas() int32 {
	if s.Replicas == nil {
		return 1
	}
	return *s.Replicas
}

// LabelSelector selects objects by labels; Skiff supports matchLabels.
type LabelSelector struct {
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// PodTemplateSpec is the pod a Deployment stamps out.
type PodTemplateSpec struct {
	Metadata ObjectMeta `json:"metadata,omitempty"`
	Spec     PodSpec    `json:"spec"`
}

// DeploymentStrategy is RollingUpdate (default) or Recreate.
type DeploymentStrategy struct {
	Type          string                   `json:"type,omitempty"`
	RollingUpdate *RollingUpdateDeployment `json:"rollingUpdate,omitempty"`
}

// RollingUpdateDeployment bounds a rollout.
type RollingUpdateDeployment struct {
	MaxUnavailable *IntOrString `json:"maxUnavailable,omitempty"`
	MaxSurge       *IntOrString `json:"maxSurge,omitempty"`
}

// DeploymentStatus is the controller's view of a rollout.
type DeploymentStatus struct {
	ObservedGeneration  int64       `json:"observedGeneration,omitempty"`
	Replicas            int32       `json:"replicas"`
	UpdatedReplicas     int32       `json:"updatedReplicas"`
	ReadyReplicas       int32       `json:"readyReplicas"`
	AvailableReplicas   int32       `json:"availableReplicas"`
	UnavailableReplicas int32       `json:"unavailableReplicas,omitempty"`
	Conditions          []Condition `json:"conditions,omitempty"`
}

// Service is a v1 Service.
type Service struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta    `json:"metadata"`
	Spec     ServiceSpec   `json:"spec"`
	Status   ServiceStatus `json:"status,omitempty"`
}

// ServiceStatus is empty for ClusterIP services; kept for the Kubernetes shape.
type ServiceStatus struct{}

// ServiceSpec is the supported subset of a v1 ServiceSpec.
type ServiceSpec struct {
	Type      string            `json:"type,omitempty"`
	Selector  map[string]string `json:"selector,omitempty"`
	Ports     []ServicePort     `json:"ports"`
	ClusterIP string            `json:"clusterIP,omitempty"`
}

// ServicePort maps a Service port to a target port of the selected pods.
type ServicePort struct {
	Name       string       `json:"name,omitempty"`
	Protocol   string       `json:"protocol,omitempty"`
	Port       int32        `json:"port"`
	TargetPort *IntOrString `json:"targetPort,omitempty"`
}

// Endpoints lists the ready addresses behind a Service, per service port.
type Endpoints struct {
	TypeMeta  `json:",inline"`
	Metadata  ObjectMeta        `json:"metadata"`
	Addresses []EndpointAddress `json:"addresses"`
}

// EndpointAddress is one pod behind a Service, with the target port it resolved for every
// service port (named target ports can differ from pod to pod).
type EndpointAddress struct {
	IP       string         `json:"ip"`
	NodeName string         `json:"nodeName,omitempty"`
	PodName  string         `json:"podName"`
	Ports    []EndpointPort `json:"ports"`
}

// EndpointPort is the resolved target of one service port on one pod.
type EndpointPort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
}

// Namespace is a v1 Namespace.
type Namespace struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta      `json:"metadata"`
	Status   NamespaceStatus `json:"status,omitempty"`
}

// NamespaceStatus is Active or Terminating.
type NamespaceStatus struct {
	Phase string `json:"phase,omitempty"`
}

// Node is a v1 Node.
type Node struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     NodeSpec   `json:"spec"`
	Status   NodeStatus `json:"status"`
}

// NodeSpec holds the pod CIDR, taints and cordon state.
type NodeSpec struct {
	PodCIDR       string  `json:"podCIDR,omitempty"`
	Unschedulable bool    `json:"unschedulable,omitempty"`
	Taints        []Taint `json:"taints,omitempty"`
}

// NodeStatus holds capacity, addresses and the Ready condition.
type NodeStatus struct {
	Capacity    ResourceList  `json:"capacity,omitempty"`
	Allocatable ResourceList  `json:"allocatable,omitempty"`
	Addresses   []NodeAddress `json:"addresses,omitempty"`
	Conditions  []Condition   `json:"conditions,omitempty"`
}

// NodeAddress is an address of a node (type InternalIP).
type NodeAddress struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// IntOrString is a value that is an integer or a string, such as a port name or "25%".
type IntOrString struct {
	IsString bool
	IntVal   int32
	StrVal   string
}

// FromInt returns an integer IntOrString.
func FromInt(i int32) *IntOrString { return &IntOrString{IntVal: i} }

// FromString returns a string IntOrString.
func FromString(s string) *IntOrString { return &IntOrString{IsString: true, StrVal: s} }

// MarshalJSON writes a number or a string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.StrVal)
	}
	return json.Marshal(v.IntVal)
}

// UnmarshalJSON reads a number or a string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.IsString = true
		return json.Unmarshal(b, &v.StrVal)
	}
	v.IsString = false
	return json.Unmarshal(b, &v.IntVal)
}

// String returns the value as text.
func (v IntOrString) String() string {
	if v.IsString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// ScaledValue resolves an integer or a percentage of total; percentages round up when roundUp is
// set and down otherwise, as Kubernetes does for maxSurge and maxUnavailable.
func (v *IntOrString) ScaledValue(total int, roundUp bool) (int, error) {
	if v == nil {
		return 0, nil
	}
	if !v.IsString {
		return int(v.IntVal), nil
	}
	s := v.StrVal
	if len(s) < 2 || s[len(s)-1] != '%' {
		return 0, fmt.Errorf("%q is neither an integer nor a percentage: %w", s, ErrInvalidArgument)
	}
	p, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || p < 0 {
		return 0, fmt.Errorf("%q is not a valid percentage: %w", s, ErrInvalidArgument)
	}
	if roundUp {
		return (p*total + 99) / 100, nil
	}
	return p * total / 100, nil
}
