package fxredis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/dbwrap/redistoken"
	"github.com/reqcanary/canary/fxmodule/fxredis"
	"github.com/reqcanary/canary/internal/testenv"
)

// No goroutine (the token store's write-back) outlives the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// On the real Redis: the module provides a token store on the
// application's client that keeps positions in Redis under the default
// prefix, and closes it on the application's stop (not the client, which
// is the application's).
func TestModuleTokenStore(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	defer rdb.Close()
	var tokens dbwrap.TokenStore
	app := fxtest.New(t, fxredis.Module, fx.Supply(rdb), fx.Populate(&tokens))
	app.RequireStart()

	ctx := context.Background()
	key := "4:fxredis-test:" + time.Now().Format("150405.000000000")
	if err := tokens.Save(ctx, key, 42, time.Minute); err != nil {
		t.Fatal(err)
	}
	defer rdb.Del(ctx, redistoken.DefaultPrefix+key)
	if v, err := rdb.Get(ctx, redistoken.DefaultPrefix+key).Result(); err != nil || v == "" {
		t.Fatalf("Redis holds %q under the default prefix (err %v), want the position", v, err)
	}

	app.RequireStop()
	if err := tokens.Save(ctx, key, 43, time.Minute); !errors.Is(err, dbwrap.ErrClosed) {
		t.Errorf("Save after the application stopped: %v, want dbwrap.ErrClosed", err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Errorf("the application's client was closed by the module: %v", err)
	}
}

// A nil client fails the application's construction with a message naming
// the field.
func TestModuleNilClient(t *testing.T) {
	var tokens dbwrap.TokenStore
	app := fx.New(fxredis.Module, fx.Provide(func() *redis.Client { return nil }),
		fx.Populate(&tokens), fx.NopLogger)
	err := app.Err()
	if err == nil || !strings.Contains(err.Error(), "redistoken.Config.Client") {
		t.Fatalf("fx.New: %v, want an error naming redistoken.Config.Client", err)
	}
}
