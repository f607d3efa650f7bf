module skiff.dev/cmd/skiff

go 1.26

require skiff.dev/events v0.0.0

replace skiff.dev/events => ../../events
