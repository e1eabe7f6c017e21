module github.com/reqcanary/canary/benchmarks

go 1.26.0

require github.com/reqcanary/canary v0.0.0

replace github.com/reqcanary/canary => ../
