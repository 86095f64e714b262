module regshim.dev/bench/goproxy

go 1.19
