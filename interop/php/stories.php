<?php
// The shared frame of the PHP interop programs: a story runs, passes or fails with its
// reason, and the last line counts them ("N passed, N failed") for interop/run.sh.

$passed = 0;
$failed = 0;

function story(string $name, callable $s): void
{
    global $passed, $failed;
    try {
        $s();
        $passed++;
        echo "ok   - $name\n";
    } catch (Throwable $e) {
        $failed++;
        echo "FAIL - $name (" . get_class($e) . ': ' . $e->getMessage() . ")\n";
    }
}

function check(bool $ok, string $what): void
{
    if (!$ok) {
        throw new RuntimeException($what);
    }
}

/** The summary line, and the exit status that says whether every story passed. */
function finish(): void
{
    global $passed, $failed;
    echo "$passed passed, $failed failed\n";
    exit($failed === 0 ? 0 : 1);
}
