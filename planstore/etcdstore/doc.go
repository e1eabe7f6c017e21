// Package etcdstore is the etcd implementation of planstore.Store: the plan
// under one key, writes by compare-and-swap on its mod revision in one
// transaction with the history entry, watched with compaction handled.
package etcdstore
