module regshim.dev/bench/goload

go 1.19
