// gomint signs and verifies tokens with Gazette's own code (go.gazette.dev/core
// at the pinned version), for tests/auth/test_go_tokens.py. It is built by the
// test inside a copy of the module source, so it uses exactly upstream's
// dependency versions.
//
//	gomint sign KEY CAP SELECTOR IAT EXP   prints the HS256 token Gazette mints
//	gomint verify KEYS CAP TOKEN           prints the verified claims as JSON, or
//	                                       "error: ..." and exits 1
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.gazette.dev/core/auth"
	pb "go.gazette.dev/core/broker/protocol"
	"google.golang.org/grpc/metadata"
)

func main() {
	switch os.Args[1] {
	case "sign":
		key, err := base64.StdEncoding.DecodeString(os.Args[2])
		if err != nil {
			panic(err)
		}
		capability, _ := strconv.ParseUint(os.Args[3], 10, 32)
		iat, _ := strconv.ParseInt(os.Args[5], 10, 64)
		exp, _ := strconv.ParseInt(os.Args[6], 10, 64)
		claims := pb.Claims{Capability: pb.Capability(capability), Selector: pb.MustLabelSelector(os.Args[4])}
		// As KeyedAuth.Authorize stamps them, at fixed times.
		claims.IssuedAt = &jwt.NumericDate{Time: time.Unix(iat, 0)}
		claims.ExpiresAt = &jwt.NumericDate{Time: time.Unix(exp, 0)}
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
		if err != nil {
			panic(err)
		}
		fmt.Println(token)
	case "verify":
		ka, err := auth.NewKeyedAuth(os.Args[2])
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		capability, _ := strconv.ParseUint(os.Args[3], 10, 32)
		ctx := metadata.NewIncomingContext(context.Background(),
			metadata.Pairs("authorization", "Bearer "+strings.TrimSpace(os.Args[4])))
		_, cancel, claims, err := ka.Verify(ctx, pb.Capability(capability))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		cancel()
		out, _ := json.Marshal(claims)
		fmt.Println(string(out))
	}
}
