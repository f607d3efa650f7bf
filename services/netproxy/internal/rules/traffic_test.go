package rules

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"
)

// Traffic tests: a node namespace with a bridge, pods in their own namespaces on veth pairs,
// Go listeners in the pods that answer their own name. All addresses exist only inside these
// namespaces; nothing is routed out of them.

const (
	podTCPPort = 8080
	podUDPPort = 5353
)

type pod struct {
	*netNS
	ip netip.Addr
}

type cluster struct {
	node *netNS
	pods []*pod
}

// newCluster builds a node with n pods at 10.88.0.11, .12, ... on bridge br0 (10.88.0.1/24), the
// node's own address, as the CNI bridge plugin sets them up (with hairpin mode on the pod ports,
// so a pod can be balanced back to itself even when br_netfilter bridges the DNATed packet);
// each pod runs a TCP and a UDP responder.
//
// The node's default route leads out of "uplink0", a veth whose peer stays in the node's
// namespace and answers nothing, standing in for eth0: a packet that escaped DNAT dies there.
// (A default route out of br0 itself would make the node answer pods with ICMP redirects, which
// share a rate limit with the rejects under test.)
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{node: newNetNS(t, "node")}
	for _, args := range [][]string{
		{"ip", "link", "add", "br0", "type", "bridge"},
		{"ip", "addr", "add", "10.88.0.1/24", "dev", "br0"},
		{"ip", "link", "set", "br0", "up"},
		{"ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"},
		{"ip", "addr", "add", "192.0.2.1/24", "dev", "uplink0"},
		{"ip", "link", "set", "uplink0", "up"},
		{"ip", "link", "set", "uplink1", "up"},
		{"ip", "route", "add", "default", "via", "192.0.2.254", "dev", "uplink0"},
		{"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
	} {
		c.node.mustRun(t, args...)
	}
	for i := range n {
		p := &pod{netNS: newNetNS(t, fmt.Sprintf("pod%d", i)), ip: netip.AddrFrom4([4]byte{10, 88, 0, byte(11 + i)})}
		veth := fmt.Sprintf("veth%d", i)
		c.node.mustRun(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(p.tid))
		c.node.mustRun(t, "ip", "link", "set", veth, "master", "br0", "up")
		c.node.mustRun(t, "ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
		p.mustRun(t, "ip", "addr", "add", p.ip.String()+"/24", "dev", "eth0")
		p.mustRun(t, "ip", "link", "set", "eth0", "up")
		p.mustRun(t, "ip", "route", "add", "default", "via", "10.88.0.1")
		p.serve(t)
		c.pods = append(c.pods, p)
	}
	return c
}

// serve starts responders that answer every TCP connection and UDP datagram with the pod's name.
func (p *pod) serve(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	if err := p.Do(func() (err error) {
		if ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", podTCPPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", podUDPPort))
		return err
	}); err != nil {
		t.Fatalf("pod %s: listen: %v", p.name, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Write([]byte(p.name))
			conn.Close()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(p.name), from)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		wg.Wait()
	})
}

func (c *cluster) endpoints(port uint16, pods ...int) []Endpoint {
	var out []Endpoint
	for _, i := range pods {
		out = append(out, Endpoint{IP: c.pods[i].ip, Port: port})
	}
	return out
}

// askTCP opens one TCP connection from inside ns and returns who answered.
func askTCP(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp4", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(conn)
	return string(b), err
}

// askManyTCP opens n connections from inside ns and counts the answers per pod.
func askManyTCP(ns *netNS, addr string, n int) (map[string]int, error) {
	counts := map[string]int{}
	err := ns.Do(func() error {
		for i := range n {
			name, err := askTCP(addr)
			if err != nil {
				return fmt.Errorf("connection %d of %d to %s: %w", i+1, n, addr, err)
			}
			counts[name]++
		}
		return nil
	})
	return counts, err
}

// udpClient is a connected UDP socket: one conntrack entry for as long as it keeps talking.
type udpClient struct{ conn *net.UDPConn }

func dialUDP(ns *netNS, addr string) (*udpClient, error) {
	var c *net.UDPConn
	err := ns.Do(func() error {
		raddr, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err = net.DialUDP("udp4", nil, raddr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &udpClient{c}, nil
}

func (u *udpClient) ask() (string, error) {
	if _, err := u.conn.Write([]byte("who?")); err != nil {
		return "", err
	}
	u.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64)
	n, err := u.conn.Read(buf)
	return string(buf[:n]), err
}

func (u *udpClient) localPort() uint16 { return uint16(u.conn.LocalAddr().(*net.UDPAddr).Port) }

func syncOrFatal(t *testing.T, s *Syncer, desired []ServicePort) {
	t.Helper()
	if err := s.Sync(context.Background(), desired); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func checkSpread(t *testing.T, counts map[string]int, total int, pods []*pod) {
	t.Helper()
	for _, p := range pods {
		if got := counts[p.name]; got*10 < total {
			t.Errorf("%s answered %d of %d connections, want at least 10%% (answers %v)", p.name, got, total, counts)
		}
	}
}

func TestTrafficTCPBalancesAcrossEndpoints(t *testing.T) {
	// br_netfilter (on by default on this kernel) bridges a DNATed packet whose endpoint is on the
	// same bridge instead of routing it; both paths must work.
	for _, brNetfilter := range []string{"1", "0"} {
		t.Run("bridge-nf-call-iptables="+brNetfilter, func(t *testing.T) {
			c := newCluster(t, 3)
			if _, err := c.node.run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables="+brNetfilter); err != nil {
				t.Fatalf("br_netfilter is needed for this case: %v", err)
			}
			testTCPBalance(t, c)
		})
	}
}

func testTCPBalance(t *testing.T, c *cluster) {
	s := newSyncerIn(t, c.node, Config{})
	web := svc("web", "10.96.0.10", TCP, 80, c.endpoints(podTCPPort, 0, 1, 2)...)
	syncOrFatal(t, s, []ServicePort{web})

	// From the node itself: nat-output.
	counts, err := askManyTCP(c.node, "10.96.0.10:80", 300)
	if err != nil {
		t.Fatal(err)
	}
	checkSpread(t, counts, 300, c.pods)

	// From a pod, which is also an endpoint: nat-prerouting, and a connection that is balanced
	// back to its own source only works because it is masqueraded.
	counts, err = askManyTCP(c.pods[0].netNS, "10.96.0.10:80", 90)
	if err != nil {
		t.Fatal(err)
	}
	checkSpread(t, counts, 90, c.pods)
}

func TestTrafficFollowsEndpointChanges(t *testing.T) {
	c := newCluster(t, 3)
	s := newSyncerIn(t, c.node, Config{})
	syncOrFatal(t, s, []ServicePort{svc("web", "10.96.0.10", TCP, 80, c.endpoints(podTCPPort, 0, 1)...)})
	counts, err := askManyTCP(c.node, "10.96.0.10:80", 100)
	if err != nil {
		t.Fatal(err)
	}
	checkSpread(t, counts, 100, c.pods[:2])
	if counts[c.pods[2].name] != 0 {
		t.Errorf("pod2 is not an endpoint but answered: %v", counts)
	}

	// pod1 leaves, pod2 joins: an incremental sync of elements only.
	syncOrFatal(t, s, []ServicePort{svc("web", "10.96.0.10", TCP, 80, c.endpoints(podTCPPort, 0, 2)...)})
	counts, err = askManyTCP(c.node, "10.96.0.10:80", 100)
	if err != nil {
		t.Fatal(err)
	}
	if counts[c.pods[1].name] != 0 {
		t.Errorf("pod1 was removed but answered: %v", counts)
	}
	checkSpread(t, counts, 100, []*pod{c.pods[0], c.pods[2]})
}

func TestTrafficUDPBalancesAcrossEndpoints(t *testing.T) {
	c := newCluster(t, 3)
	s := newSyncerIn(t, c.node, Config{})
	syncOrFatal(t, s, []ServicePort{svc("dns", "10.96.0.53", UDP, 53, c.endpoints(podUDPPort, 0, 1, 2)...)})

	const n = 150
	counts := map[string]int{}
	for i := range n {
		u, err := dialUDP(c.node, "10.96.0.53:53")
		if err != nil {
			t.Fatal(err)
		}
		name, err := u.ask()
		u.conn.Close()
		if err != nil {
			t.Fatalf("UDP exchange %d of %d: %v", i+1, n, err)
		}
		counts[name]++
	}
	checkSpread(t, counts, n, c.pods)
}

func TestTrafficNoEndpointsIsRefusedFast(t *testing.T) {
	c := newCluster(t, 1)
	s := newSyncerIn(t, c.node, Config{})
	syncOrFatal(t, s, []ServicePort{
		svc("idle", "10.96.0.20", TCP, 443),
		svc("idle-udp", "10.96.0.20", UDP, 53),
		// A working port on the same VIP, so the refusal is about the port, not the address.
		svc("web", "10.96.0.20", TCP, 80, c.endpoints(podTCPPort, 0)...),
	})

	for _, from := range []*netNS{c.node, c.pods[0].netNS} { // filter-output and filter-forward
		t.Run("tcp from "+from.name, func(t *testing.T) {
			var elapsed time.Duration
			err := from.Do(func() error {
				start := time.Now()
				_, err := askTCP("10.96.0.20:443")
				elapsed = time.Since(start)
				return err
			})
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("connect to a port without endpoints: error = %v, want ECONNREFUSED", err)
			}
			if elapsed > time.Second {
				t.Errorf("refusal took %v, want well under a second", elapsed)
			}
			if err := from.Do(func() error { _, err := askTCP("10.96.0.20:80"); return err }); err != nil {
				t.Errorf("the port with an endpoint on the same VIP: %v", err)
			}
		})
		t.Run("udp from "+from.name, func(t *testing.T) {
			u, err := dialUDP(from, "10.96.0.20:53")
			if err != nil {
				t.Fatal(err)
			}
			defer u.conn.Close()
			// A pod gets the ICMP port-unreachable. On the node the packet is dropped in its own
			// output path, so the write itself fails with EPERM (and the ICMP follows).
			_, err = u.ask()
			refused := errors.Is(err, syscall.ECONNREFUSED) || from == c.node && errors.Is(err, syscall.EPERM)
			if !refused {
				t.Fatalf("UDP to a port without endpoints: error = %v, want ECONNREFUSED (or EPERM on the node)", err)
			}
		})
	}

	// Once the port has an endpoint it answers.
	syncOrFatal(t, s, []ServicePort{
		svc("idle", "10.96.0.20", TCP, 443, c.endpoints(podTCPPort, 0)...),
		svc("idle-udp", "10.96.0.20", UDP, 53, c.endpoints(podUDPPort, 0)...),
		svc("web", "10.96.0.20", TCP, 80, c.endpoints(podTCPPort, 0)...),
	})
	if err := c.node.Do(func() error { _, err := askTCP("10.96.0.20:443"); return err }); err != nil {
		t.Errorf("after the port got an endpoint: %v", err)
	}
}

// udpFlows returns the conntrack entries of the node from a client port to vip:53.
func udpFlows(t *testing.T, node *netNS, clientPort uint16) []conntrack.Flow {
	t.Helper()
	var out []conntrack.Flow
	err := node.Do(func() error {
		ct, err := conntrack.Dial(nil)
		if err != nil {
			return err
		}
		defer ct.Close()
		flows, err := ct.Dump(nil)
		if err != nil {
			return err
		}
		for _, f := range flows {
			if f.TupleOrig.Proto.Protocol == uint8(UDP) && f.TupleOrig.Proto.SourcePort == clientPort &&
				f.TupleOrig.IP.DestinationAddress == ip("10.96.0.53") {
				out = append(out, f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dump conntrack: %v", err)
	}
	return out
}

func TestTrafficRemovedUDPEndpointLosesItsConntrackEntries(t *testing.T) {
	c := newCluster(t, 2)
	s := newSyncerIn(t, c.node, Config{})
	dns := func(pods ...int) []ServicePort {
		return []ServicePort{svc("dns", "10.96.0.53", UDP, 53, c.endpoints(podUDPPort, pods...)...)}
	}
	syncOrFatal(t, s, dns(0, 1))

	// Open clients until one talks to pod0 and one to pod1 (each new client is a coin toss).
	clients := map[string]*udpClient{}
	deadline := time.Now().Add(10 * time.Second)
	for len(clients) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no client reached both pods before the deadline: %v", clients)
		}
		u, err := dialUDP(c.node, "10.96.0.53:53")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.conn.Close() })
		name, err := u.ask()
		if err != nil {
			t.Fatal(err)
		}
		if clients[name] == nil {
			clients[name] = u
		}
	}
	toPod0, toPod1 := clients[c.pods[0].name], clients[c.pods[1].name]
	flows := udpFlows(t, c.node, toPod1.localPort())
	if len(flows) != 1 || flows[0].TupleReply.IP.SourceAddress != c.pods[1].ip {
		t.Fatalf("before the change: flows of the pod1 client = %+v, want one answered by %s", flows, c.pods[1].ip)
	}

	syncOrFatal(t, s, dns(0)) // pod1 is no longer an endpoint

	if flows := udpFlows(t, c.node, toPod1.localPort()); len(flows) != 0 {
		t.Errorf("the conntrack entry to the removed endpoint survived the sync: %+v", flows)
	}
	if flows := udpFlows(t, c.node, toPod0.localPort()); len(flows) != 1 {
		t.Errorf("the conntrack entry to the remaining endpoint was deleted: %+v", flows)
	}
	// The same client socket now reaches pod0: its next packet was NATed afresh.
	if name, err := toPod1.ask(); err != nil || name != c.pods[0].name {
		t.Errorf("the former pod1 client got %q, %v; want an answer from %s", name, err, c.pods[0].name)
	}
}
