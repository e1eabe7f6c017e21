package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// config is what the flags and the environment say.
type config struct {
	httpAddr  string
	grpcAddr  string
	adminAddr string // the admin API and /metrics
	dbPath    string
	planFile  string // "" means the embedded plan.yaml
	pgPrimary string
	pgReplica string
	myPrimary string // MySQL/MariaDB primary DSN (go-sql-driver/mysql)
	myReplica string
	redisAddr string
	fleet     string // Redis key prefix of the fleet-wide kill switch (with -redis)
	adminTok  string // bearer token of the admin POSTs ("" read-only)
	etcd      string // etcd endpoints of the plan store (planstore.go); "" none
	etcdKeys  string // key prefix of the plan store
}

// Errors of parseFlags after which the flag package has printed the usage.
var (
	errHelp    = errors.New("help requested")     // -h
	errPrinted = errors.New("bad flag (printed)") // the flag package said what
)

// flagEnv names the environment variable of each flag.
var flagEnv = map[string]string{
	"http":          "DEMO_SHOP_HTTP",
	"grpc":          "DEMO_SHOP_GRPC",
	"admin":         "DEMO_SHOP_ADMIN",
	"db":            "DEMO_SHOP_DB",
	"plan":          "DEMO_SHOP_PLAN",
	"pg-primary":    "DEMO_SHOP_PG_PRIMARY",
	"pg-replica":    "DEMO_SHOP_PG_REPLICA",
	"mysql-primary": "DEMO_SHOP_MYSQL_PRIMARY",
	"mysql-replica": "DEMO_SHOP_MYSQL_REPLICA",
	"redis":         "DEMO_SHOP_REDIS",
	"fleet":         "DEMO_SHOP_FLEET",
	"admin-token":   "DEMO_SHOP_ADMIN_TOKEN",
	"etcd":          "DEMO_SHOP_ETCD",
	"etcd-prefix":   "DEMO_SHOP_ETCD_PREFIX",
}

// parseFlags reads args, with the DEMO_SHOP_* environment variables as
// defaults, and checks them. Errors name the flag (or variable) at fault.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("demo-shop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv(flagEnv[name]); v != "" {
			return v
		}
		return def
	}
	var c config
	fs.StringVar(&c.httpAddr, "http", env("http", "127.0.0.1:8080"), "HTTP listen `address` (env DEMO_SHOP_HTTP); port 0 picks a free port")
	fs.StringVar(&c.grpcAddr, "grpc", env("grpc", "127.0.0.1:9090"), "gRPC listen `address` (env DEMO_SHOP_GRPC); port 0 picks a free port")
	fs.StringVar(&c.adminAddr, "admin", env("admin", "127.0.0.1:8081"), "admin API and /metrics listen `address` (env DEMO_SHOP_ADMIN); keep it private")
	fs.StringVar(&c.dbPath, "db", env("db", filepath.Join(os.TempDir(), "canary-demo-shop.db")), "SQLite database `file`, created and seeded on first start (env DEMO_SHOP_DB); unused with -pg-primary")
	fs.StringVar(&c.planFile, "plan", env("plan", ""), "rollout plan `file`, watched for changes (env DEMO_SHOP_PLAN); default: the embedded cmd/demo-shop/plan.yaml")
	fs.StringVar(&c.pgPrimary, "pg-primary", env("pg-primary", ""), "PostgreSQL primary `DSN`, instead of SQLite (env DEMO_SHOP_PG_PRIMARY)"+serviceNote())
	fs.StringVar(&c.pgReplica, "pg-replica", env("pg-replica", ""), "PostgreSQL streaming replica `DSN`; needs -pg-primary (env DEMO_SHOP_PG_REPLICA)"+serviceNote())
	fs.StringVar(&c.myPrimary, "mysql-primary", env("mysql-primary", ""), "MySQL/MariaDB primary `DSN` (go-sql-driver/mysql form, user@tcp(host:port)/db), instead of SQLite (env DEMO_SHOP_MYSQL_PRIMARY)"+serviceNote())
	fs.StringVar(&c.myReplica, "mysql-replica", env("mysql-replica", ""), "MariaDB GTID replica `DSN`; needs -mysql-primary (env DEMO_SHOP_MYSQL_REPLICA)"+serviceNote())
	fs.StringVar(&c.redisAddr, "redis", env("redis", ""), "Redis `address` (host:port or redis:// URL) for the fallback cache and read-your-writes tokens (env DEMO_SHOP_REDIS)"+serviceNote())
	fs.StringVar(&c.fleet, "fleet", env("fleet", "demo-shop:"), "Redis key `prefix` of the fleet-wide kill switch shared by shops on the same -redis (env DEMO_SHOP_FLEET)"+serviceNote())
	fs.StringVar(&c.adminTok, "admin-token", env("admin-token", builtinAdminToken), "bearer `token` the admin POSTs need (env DEMO_SHOP_ADMIN_TOKEN); empty: read-only; the built-in default is refused when a listener is beyond loopback")
	fs.StringVar(&c.etcd, "etcd", env("etcd", ""), "etcd `endpoints` (host:port, comma-separated) of a shared plan store to follow instead of -plan; an empty store is seeded with the embedded plan (env DEMO_SHOP_ETCD)"+serviceNote())
	fs.StringVar(&c.etcdKeys, "etcd-prefix", env("etcd-prefix", defaultEtcdPrefix), "key `prefix` of the plan store on -etcd (env DEMO_SHOP_ETCD_PREFIX)"+serviceNote())
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: demo-shop [flags]        run the shop (docs/demo.md)")
		fmt.Fprintln(stderr, "       demo-shop call -h        the gRPC client")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, errPrinted // the flag package has printed the problem and the usage
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	for _, name := range []string{"http", "grpc", "admin"} {
		addr := map[string]string{"http": c.httpAddr, "grpc": c.grpcAddr, "admin": c.adminAddr}[name]
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return c, fmt.Errorf("-%s (or %s): %q is not host:port: %w", name, flagEnv[name], addr, err)
		}
		if c.adminTok == builtinAdminToken && !loopbackHost(host) {
			return c, fmt.Errorf("-admin-token (or %s): the built-in %q is for a shop on loopback only, and -%s %s listens beyond it: choose a token of your own (or '' for a read-only admin)",
				flagEnv["admin-token"], builtinAdminToken, name, addr)
		}
	}
	if !servicesBuilt {
		for _, f := range []struct{ name, value string }{
			{"pg-primary", c.pgPrimary}, {"pg-replica", c.pgReplica}, {"mysql-primary", c.myPrimary},
			{"mysql-replica", c.myReplica}, {"redis", c.redisAddr}, {"etcd", c.etcd},
		} {
			if f.value != "" {
				return c, errEmbeddedOnly(fmt.Sprintf("-%s (or %s)", f.name, flagEnv[f.name]), "-"+f.name)
			}
		}
	}
	if err := c.checkEtcd(); err != nil {
		return c, err
	}
	if c.pgReplica != "" && c.pgPrimary == "" {
		return c, fmt.Errorf("-pg-replica (or %s) needs -pg-primary", flagEnv["pg-replica"])
	}
	if c.myReplica != "" && c.myPrimary == "" {
		return c, fmt.Errorf("-mysql-replica (or %s) needs -mysql-primary", flagEnv["mysql-replica"])
	}
	if c.myPrimary != "" && c.pgPrimary != "" {
		return c, fmt.Errorf("-mysql-primary and -pg-primary: choose one database")
	}
	if c.pgPrimary == "" && c.myPrimary == "" && strings.TrimSpace(c.dbPath) == "" {
		return c, fmt.Errorf("-db (or %s): empty path", flagEnv["db"])
	}
	if c.redisAddr != "" && !strings.Contains(c.redisAddr, "://") {
		if _, _, err := net.SplitHostPort(c.redisAddr); err != nil {
			return c, fmt.Errorf("-redis (or %s): %q is neither host:port nor a redis:// URL", flagEnv["redis"], c.redisAddr)
		}
	}
	return c, nil
}

// builtinAdminToken is the default admin token, accepted only while every
// listener is on loopback.
const builtinAdminToken = "demo-token"

// loopbackHost reports whether a listen host only accepts connections from
// this machine: "localhost" or a loopback IP ("" and 0.0.0.0 listen on every
// interface).
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// planDesc says which plan is in use, for the start-up message.
func (c config) planDesc() string {
	if c.etcd != "" {
		return "from etcd " + c.etcd + " " + c.etcdKeys + " (watched)"
	}
	if c.planFile == "" {
		return "embedded plan.yaml"
	}
	return c.planFile + " (watched)"
}

// defaultEtcdPrefix is the default of -etcd-prefix.
const defaultEtcdPrefix = "/canary/plan/" // etcdstore.DefaultPrefix (services_test.go checks)

// checkEtcd checks -etcd and -etcd-prefix.
func (c config) checkEtcd() error {
	if c.etcd == "" {
		return nil
	}
	if c.planFile != "" {
		return fmt.Errorf("-etcd (or %s) and -plan (or %s) cannot be combined: the plan comes from one place",
			flagEnv["etcd"], flagEnv["plan"])
	}
	for _, ep := range strings.Split(c.etcd, ",") {
		if strings.TrimSpace(ep) == "" {
			return fmt.Errorf("-etcd (or %s): empty endpoint in %q", flagEnv["etcd"], c.etcd)
		}
	}
	if !strings.HasPrefix(c.etcdKeys, "/") {
		return fmt.Errorf("-etcd-prefix (or %s): %q must start with /", flagEnv["etcd-prefix"], c.etcdKeys)
	}
	return nil
}

// errEmbeddedOnly is the error for a service flag given to a shop built with
// -tags demo_embedded (as `make demo` builds it), which has the embedded
// mode only: what names the flag (and its variable), flagName is the flag.
func errEmbeddedOnly(what, flagName string) error {
	return fmt.Errorf("%s: this demo-shop was built with -tags demo_embedded (as `make demo` builds it), which leaves the service modes out; "+
		"build it without the tag: go run ./cmd/demo-shop %s …", what, flagName)
}

// serviceNote ends the usage line of a service flag in a build without them.
func serviceNote() string {
	if servicesBuilt {
		return ""
	}
	return " [not in this build: -tags demo_embedded]"
}
