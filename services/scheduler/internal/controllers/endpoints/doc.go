// Package endpoints is the Endpoints controller: for every Service with a selector it writes the
// set of pods that may receive the Service's traffic, with the target port each service port
// resolves to on each pod, as EndpointsUpdated on the endpoints subject of the Service.
//
// # Which pods
//
// A pod is an endpoint of a Service when it is in the Service's namespace, its labels match the
// selector, it is ready (running, every container ready), it has an address, it is not being
// deleted, and its node is Ready. Terminating pods leave at once: the pod lifecycle controller
// waits for them to be gone from every Endpoints before it asks the node to stop them, so
// traffic drains before SIGTERM. Pods on a NotReady node leave as well, as Kubernetes' node
// lifecycle controller marks them not ready: their agent cannot tell us they died.
//
// # Ports
//
// A targetPort that is a number is used as is (absent: the service port). A named targetPort is
// looked up among the pod's container ports by name and protocol, per pod, so pods of two
// versions may serve it on different numbers; a pod that lacks the name is left out of that port,
// and a pod that resolves no port at all is left out.
//
// # Writes and ordering
//
// Addresses are sorted by IP, then pod name, ports in the Service's order, so equal sets encode
// equally. A Service's endpoints are written only when they differ from what the log holds, and
// once, empty, for a new Service with no ready pod (so `skiff get endpoints` shows it). Each write
// is conditional on the endpoints subject; a conflict (another controller wrote) is decided again
// from the newer state. Services without a selector are left alone, as in Kubernetes.
package endpoints
