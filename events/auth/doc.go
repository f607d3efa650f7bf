// Package auth is Skiff's NATS authentication and authorization: who may connect to the
// cluster's servers, and what each of Skiff's programs may publish and subscribe to.
//
// # Model: decentralized JWT auth
//
// An operator key signs two account JWTs: SYS (the servers' system account) and SKIFF (where
// everything of Skiff lives, with JetStream enabled and no account limits: the stream and
// buckets carry their own). The SKIFF account key signs one user JWT per program or person;
// a creds file holds that JWT and the user's nkey seed.
//
// Servers trust the operator and learn the accounts (resolver_preload, and the full resolver's
// directory); they never learn users. So a new node is only new creds signed by the account key
// (`skiff node creds`): no server change, no restart, and the key that mints them is one file
// (keys/account.nk) that can stay on the operator's machine. Taking a user back is a revocation
// in the account JWT (Keys.Revoke), pushed to running servers on $SYS.REQ.CLAIMS.UPDATE with
// the system user's creds; servers then close the user's connections and refuse it at connect.
//
// # Identities and roles
//
// A user JWT's name is its identity, which is also the actor of the events it writes and the
// last token of its inbox prefix (_INBOX.<identity>, set with nats.CustomInboxPrefix): each
// user may subscribe only below its own inbox, so no one reads another's replies. The tag
// role:<role> says which of four roles it has:
//
//   - admin (identity "admin"): everything. It creates and changes the stream SKIFF and the
//     buckets (`skiff cluster bootstrap`); no program needs it at run time.
//   - scheduler ("scheduler"): appends every kind of event except a node's status, runs the
//     leader election in KV skiff-leader and is the only one (admin aside) to write leader terms
//     and their fences (skiff.ev.leader.>), deletes a gone node's lease, reads the whole log and
//     the two buckets, writes and prunes snapshots (skiff-snapshots, which it also reads, and
//     skiff-snapshots-nodes, which it only writes and deletes by name: its JWT, the longest,
//     must fit the server's 4 KiB CONNECT line),
//     serves skiff.cmd.> and skiff.q.get, and publishes to _INBOX.> for the
//     answers (an acknowledgement, then chunks). Not through a response permission: the
//     server keeps that with the connection the request came in on, and an answer sent after
//     the replica reconnected to another server (its own lost mid-command) was refused.
//   - node X ("node:X"): modelled on Kubernetes' NodeRestriction admission. A node writes only
//     what is about itself: its status events (skiff.ev.status.X.>), its registration
//     (skiff.ev.node.X) and its lease (key X of skiff-leases); never skiff.ev.node._.X, where
//     controllers and admission write its pod CIDR, readiness and cordon. It reads its own
//     bindings and status, and what every node needs (services, endpoints, nodes), but not pods
//     or other
//     nodes' work: a node taken over cannot see or change the rest of the cluster's pods. It
//     reads the snapshots of what it may read (skiff-snapshots-nodes: nodes, services,
//     endpoints), never those of the whole fold. It
//     reads images, never writes them, and answers log requests on skiff.logs.X with chunks
//     sent to the asking client's _INBOX.<identity>.logs.> inbox.
//   - user U ("U", a DNS label other than admin, scheduler, node, sys, system): sends commands
//     only as itself (skiff.cmd.<verb>.U: the scheduler takes the actor from the subject's last
//     token, which the server has checked), queries, reads the log and its snapshots, asks nodes for logs and
//     imports images. It cannot append events: everything it changes goes through the
//     scheduler's admission.
//
// Consumers are created through subjects that name the filter
// ($JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>), and the server checks the filter in the
// request against the subject, so a node's read access is scoped by its publish permissions.
// A consumer with several filters has no filter in its subject; nodes cannot create one (the
// server refuses $JS.API.CONSUMER.CREATE.SKIFF.<name>), so a node's programs read each filter
// with its own ordered consumer: the agent reads NodeWorkFilter (skiff.ev.*.X.*.*), and the
// network proxy needs one consumer for skiff.ev.service.> and one for skiff.ev.endpoints.>.
//
// # Refusals and TLS
//
// ExplainConnectError and ExplainTLSError turn the server's refusals into one line each: which
// creds file, why (expired at T, revoked, not this cluster's), and the command that mints new
// ones; or which CA did not verify the server. An expired JWT is refused at connect as a plain
// authorization violation, so the file's own expiry tells that case apart; a connection whose
// JWT expires or is revoked later is closed with "authentication expired/revoked". nats.go
// upgrades a nats:// connection to TLS when the server requires it, so a plain-text URL without
// the CA fails like a TLS client without the CA, and works with it.
//
// # Where the lists differ from the spec
//
// Checked against nats-server v2.15.2 and nats.go v1.55.0 (server_test.go runs every role's
// permitted and forbidden operations against a real server):
//
//   - JS-read(S) also allows $JS.API.DIRECT.GET.S (no subject tokens): Stream.GetMsg by
//     sequence on a stream with AllowDirect sends the sequence in the body of that subject.
//   - Everything else the spec lists is what nats.go sends: one-filter ordered consumers use
//     $JS.API.CONSUMER.CREATE.S.<name>.<filter>, the object store's Get and KV watchers use
//     push ordered consumers (covered by CONSUMER.CREATE.S.> and $JS.FC.S.>), KV Get and the
//     object store's metadata lookups use direct gets by subject, and a Put of an existing
//     object name purges the old chunks with $JS.API.STREAM.PURGE.OBJ_skiff-images.
//
// # Known holes
//
//   - JetStream answers API requests on the request's reply subject, published by the server
//     on the user's behalf without checking the user's publish permissions. A request whose
//     reply subject is inside skiff.ev.> makes the server store its answer in the stream. The
//     answer is JSON but not an event envelope: readers skip it as an undecodable (poison)
//     event, and it cannot satisfy an expected-sequence check for anyone but a writer that
//     expects it. The same holds for a push consumer's deliver subject, which the server also
//     publishes to on the user's behalf: a node could have its own status events delivered to
//     skiff.cmd.apply.admin. That is why every responder Skiff controls (scheduler commands and
//     queries, the node's log server) acts only on requests whose reply subject starts with
//     "_INBOX.": a message without such a reply was not sent by a Skiff client. JetStream
//     refuses a deliver subject inside the consumer's own stream, but not one of another stream:
//     a node could have copies delivered onto another node's lease key or into the image store.
//     Closing both takes the stream and buckets in an account of their own behind service
//     imports, which rewrite reply and deliver subjects.
//   - Revocation is by user public key: a node's creds minted again (a new key) are a new
//     user. `skiff node revoke` revokes the key of the creds file in the cluster directory (or
//     the one --creds names); creds minted earlier for the same node with another key stay
//     valid until revoked by their file, or until they expire (--expiry).
//   - Permissions are fixed in the JWT when it is minted; changing a role's lists means minting
//     its creds again.
package auth
