// Package nomad reads the Nomad jobspecs in deploy/nomad and turns them into what Nomad would
// run, without Nomad: its licence keeps it out of this project, and no binary is here.
//
// Four steps, each usable alone:
//
//   - Load parses a jobspec with hcl/v2 and checks its shape against the subset of Nomad's
//     jobspec language the files use (jobSchema): an unknown block or attribute, a task
//     without a driver or a command, is an error naming file:line, as `nomad job validate`
//     would report it.
//   - Render places one allocation of a job on a Node and returns, for each task, the argv
//     (Nomad's ${...} interpolation of the config block), the environment Nomad gives the task,
//     and the files its template blocks write, rendered from a given set of Variables.
//   - Place picks the nodes each group runs on, for the constraints the jobspecs use
//     (attribute equality on node.*, attr.* and meta.*, distinct_hosts), so a simulated
//     datacenter starts the same allocations Nomad would.
//   - ParseHelp and CheckCommand compare a task's argv with the flags the real binary lists in its
//     --help, so a jobspec cannot drift from the programs it runs.
//
// # What Render follows, and what it does not
//
// Interpolation is HCL's own: a config or env value is an HCL template evaluated with the
// variables Nomad offers at run time (NOMAD_* names, node.unique.name, node.unique.id,
// node.datacenter, node.class, attr.unique.network.ip-address, meta.<key>). A name Nomad
// would not know is an error here, where Nomad would leave the text as it is: that catches
// typos that Nomad would pass to the program unnoticed.
//
// Templates are Go text/template, which consul-template is built on, with the functions the
// jobspecs use: nomadVar (a Variable's items; a missing Variable is an error, where Nomad
// would wait for it), env (the task's environment, node attributes included, as in Nomad),
// and printf. Anything else is an error, so a jobspec that starts using a new function fails
// here until the renderer learns it.
//
// Paths follow raw_exec: NOMAD_TASK_DIR, NOMAD_SECRETS_DIR and NOMAD_ALLOC_DIR are host
// directories under Alloc.Dir, and a task's working directory is its task directory. Under
// exec, Nomad shows the same directories at /local, /secrets and /alloc inside the task's
// chroot; the files and the argv's relative paths are the same ones.
//
// Render does not place allocations: Place, or the caller, decides which node runs what.
package nomad
