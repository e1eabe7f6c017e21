package console_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/reqcanary/canary"
)

// The console comes with the admin handler: mount the handler's subtree and
// the page is at …/ui/. Its actions are the admin API's, so they need the
// token given to WithAdminToken.
func Example() {
	eng, err := canary.New()
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	admin := http.NewServeMux()
	h := canary.AdminHandler(eng, canary.WithAdminToken("s3cret"))
	admin.Handle("/admin/canary", h)
	admin.Handle("/admin/canary/", h) // the plan routes, explain, events and the console

	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/canary/ui/", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("X-Frame-Options"))
	// Output: 200 text/html; charset=utf-8 DENY
}
