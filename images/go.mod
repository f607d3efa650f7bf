module skiff.dev/images

go 1.26
