// Package manifest reads the files a user hands to `skiff apply -f` and `skiff delete -f` and
// turns them into the documents of an api.ApplyRequest: one JSON object per Kubernetes-shaped
// object, each labelled with the file and position it came from so that the scheduler's
// validation errors can point back at it.
//
// # What it accepts
//
// A path is a file, a directory (its *.yaml, *.yml and *.json files, in name order, not
// recursive) or "-" for standard input. A file holds YAML documents separated by "---" lines,
// or one or more JSON objects; a document of kind List (or any kind ending in "List") stands for
// its items. Empty documents and documents holding only comments are skipped, as kubectl does.
//
// # Errors
//
// Syntax errors name the file and the line in the file (not in the document), because that is
// where the user's editor needs to go. Nothing is sent anywhere until every file has been read
// and converted, so a typo in the third file never leaves the first two half-applied.
package manifest
