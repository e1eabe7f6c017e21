// Package docsnippets holds the test that every Go snippet in the README and
// docs/*.md compiles as shown: each ```go block is a whole file (package
// clause and imports), and the test type-checks them all with go vet
// against this module. It has no code of its own.
package docsnippets
