// Package describe renders `skiff describe`: one object in detail, the way kubectl describe
// lays it out (aligned "Key:  value" lines, nested sections, a Conditions table), followed by
// the object's recent events from the log.
//
// The renderers are pure: they take the objects (as the scheduler returned them), whatever
// related rows the caller fetched (pods of a Deployment or on a node), the events, and the time
// to compute ages from. Fetching is the command's business, so every layout is testable with
// golden files and no cluster.
package describe
