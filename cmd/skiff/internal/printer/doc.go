// Package printer writes what `skiff get` and friends print: aligned tables (kubectl's look:
// each column as wide as its widest cell plus three spaces) and objects as JSON or YAML lists.
//
// # Streaming
//
// A Table remembers its column widths, so rows printed later (`get -w`) line up under the
// header printed first, as kubectl's watch output does; a later cell wider than its column
// pushes the rest of that one row right rather than re-aligning what is already on screen.
//
// # Concurrency
//
// Nothing here is safe for concurrent use; one goroutine prints.
package printer
