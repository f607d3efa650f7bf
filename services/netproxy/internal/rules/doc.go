// Package rules programs Service virtual IPs into one nftables table (family ip, "skiff" by
// default) through netlink. It is the data plane half of skiff-netproxy: the proxy's reconciler
// decides which Service ports exist and which endpoints are ready, and hands the whole list to
// Syncer.Sync; this package makes the kernel match it. It never runs the nft CLI and never touches
// another table.
//
// # The table
//
// A Service change is a change of set elements, never of chains or rules:
//
//	map service-ips   (VIP . proto . port) : goto lb-N          one element per port with endpoints
//	map endpoints     (VIP . proto . port . slot) : (IP . port)  one element per endpoint
//	set no-endpoints  (VIP . proto . port)                       one element per port without
//
//	chain nat-prerouting, nat-output   ip daddr . meta l4proto . th dport vmap @service-ips
//	chain lb-N                         meta mark set meta mark | 0x4000
//	                                   dnat to ip daddr . meta l4proto . th dport . numgen random mod N map @endpoints
//	chain nat-postrouting              meta mark & 0x4000 == 0x4000 meta mark set meta mark & ~0x4000 masquerade fully-random
//	chain filter-forward, filter-output  ct state new ip daddr . meta l4proto . th dport @no-endpoints reject
//
// One lb-N chain exists per endpoint count N in use, created the first time N appears and kept
// until the next full sync, so its single rule is shared by every Service with N endpoints. The
// slot is numgen's random number in [0, N), which picks one of the Service's N elements of the
// endpoints map with equal probability. Testdata/mixed.golden shows a whole table.
//
// Why this shape: kube-proxy's nftables mode writes a chain per Service and a chain per endpoint,
// so adding a Service is several chains and rules, and the kernel's cost per chain makes a full
// sync of 10,000 Services take seconds (BenchmarkKubeProxyShapeFullSync is that baseline). Here
// the chains are a constant handful, a sync is a few netlink messages of up to 1,000 elements
// each, and both the lookup and the choice of endpoint are hash-map lookups in the kernel.
//
// The two big maps are created with a size, twice what the full sync writes (at least 4,096),
// which makes them fixed-size hashes in the kernel rather than rhashtables that rehash as they
// grow: a full sync fills them twice as fast. The size is a hard limit, so an incremental sync
// that would overflow a map turns into a full sync that creates bigger ones.
//
// The cost the shape cannot avoid: whenever a transaction adds a goto element to service-ips, the
// kernel re-validates the table before committing, and that walks every element of service-ips
// once for each rule that looks it up (two: prerouting and output). Adding one Service therefore
// costs kernel time in proportion to the number of Services; see docs/bench/netproxy.md.
//
// Sets carry nft's typeof metadata (userdata), so `nft list table ip skiff` prints them as the
// expressions they are keyed by. Render returns the same text for a desired list, sorted.
//
// # Masquerading
//
// Every connection DNATed to an endpoint is masqueraded, marked by the lb-N rule with bit 0x4000
// of the packet mark (MasqueradeMark) and masqueraded, with the bit cleared, in nat-postrouting.
// The alternative, `ct status dnat masquerade`, would also masquerade every other program's DNAT
// (port forwards of a container runtime, for instance); restricting it to our VIPs needs the
// original destination port, which nft 1.0.6 cannot print in a concatenation, or a second set of
// VIPs to keep in step. The mark costs one bit that nothing else on a node may use, and nothing
// per Service.
//
// Masquerading all Service traffic, not only a pod reaching itself, is deliberate. Pods sit on a
// Linux bridge; when a pod's Service connection is balanced to another pod on the same bridge,
// the reply would go straight back across the bridge with the endpoint's address and never be
// translated back to the VIP, unless br_netfilter happens to be on. Masquerading makes the reply
// come back through the node's conntrack in every case, makes a connection balanced back to its
// own source work (with hairpin mode on the bridge port, as the CNI bridge plugin sets it), and
// gives the node's own connections to a VIP a source address the endpoint can answer. The cost:
// endpoints see the node's address, not the client's.
//
// # Ordering
//
// Every Sync is one netlink transaction (one nfnetlink batch): packets see the table before or
// after it, never in between, and Sync returns after the kernel has acknowledged every message.
// Within a transaction, element deletions come before additions, because the kernel refuses to
// overwrite the value of a map element; changing an endpoint is a delete and an add of its slot.
//
// The first Sync of a Syncer deletes the table and writes it whole, whatever was there (a
// previous proxy that was killed, a table of another version). Later ones send only the elements
// that differ from what the last successful Sync wrote, and an lb-N chain when N is new. A Sync
// that fails for any reason other than invalid input makes the next one a full one, since the
// kernel may hold anything by then.
//
// After the transaction, Sync deletes the conntrack entries that would keep UDP clients on a gone
// endpoint, or, for a port that just got its first endpoints, on the un-NATed path they were
// refused on. Doing it after the commit means no new entry can be created with the old mapping.
//
// Sync takes the whole desired list, not changes; the caller must not call it before it has seen
// all Services and endpoints (kube-proxy's rule), or the first full sync would remove everything
// else. The diff walks the desired list and the record of the last sync side by side: a caller
// that keeps its list in a stable order, appending new ports, gets the cheapest incremental sync.
//
// # Testing without root
//
// Fake is nf_tables in memory. A Syncer made by Fake.NewSyncer sends it the same netlink batches
// it sends the kernel; the Fake decodes them, applies each whole or not at all with the kernel's
// checks, and Dump prints the tables one line per set, chain, rule and element, sorted where the
// kernel keeps no order (testdata/fake/*.golden show whole sequences of syncs). The real-kernel
// tests need root and a network namespace each; TestKernelMatchesFake runs one sequence of syncs
// against both and compares the kernel's tables, read back through google/nftables, with the
// Fake's dump, so the Fake cannot drift from the kernel unnoticed.
//
// # Concurrency
//
// A Syncer's methods may be called from any goroutine; Sync and Close are serialized. NewSyncer
// binds the Syncer to the network namespace of the calling thread: its netlink sockets stay there
// whatever thread calls Sync later. A caller that switched namespaces must hold its thread with
// runtime.LockOSThread until NewSyncer returns.
package rules
