// Package console is the operator's web console of a canary engine: one
// server-rendered HTML page with a small hand-written script, embedded in
// the binary (no CDN, no build step), served by the admin handler under
// …/ui/ on the admin listener.
//
// The console adds no second way to act: its script calls the admin API's
// own JSON routes (status, events, plan, history, diff, apply, rollback,
// explain, kill switch), with the admin token in the Authorization header
// (never a cookie), so every action is checked and audited as the API's are.
// Without a token the page is read-only and shows nothing the status GET
// hides without one (the plan's salt, the trusted networks).
package console
