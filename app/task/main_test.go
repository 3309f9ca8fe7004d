package task_test

import (
	"os"
	"testing"

	"rassylka/app/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }
