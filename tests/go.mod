module skiff.dev/tests

go 1.26

require skiff.dev/events v0.0.0

replace skiff.dev/events => ../events
