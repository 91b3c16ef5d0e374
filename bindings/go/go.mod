module github.com/flame-in-c/flame/bindings/go

go 1.19
