-- Review a range with multi-byte text before the finding, check the diagnostic's columns,
-- the code action Neovim offers, then accept: the buffer equals the expected revision.
package.path = os.getenv("REFINE_TEST_DIR") .. "/?.lua;" .. package.path
local H = require("helpers")
local refine = require("refine")
refine.setup({ notify = false })

local path = os.getenv("REFINE_WORK") .. "/sum.rs"
local code = os.getenv("REFINE_CODE")
local fixed = os.getenv("REFINE_FIXED")
local buf = H.open(path, code)
local finished = H.record("RefineReviewFinished")
local accepted = H.record("RefineAccepted")

vim.cmd("1,6Refine")
H.wait(10000, function()
  return #finished > 0
end, "RefineReviewFinished")
H.eq(finished[1].findings, 1, "findings")
H.eq(finished[1].revision, true, "revision")
local diags = H.refine_diagnostics(buf)
H.eq(#diags, 1, "refine diagnostics")
local line = vim.api.nvim_buf_get_lines(buf, 3, 4, false)[1]
local col = line:find("1..xs.len()", 1, true) - 1
H.eq({ diags[1].lnum, diags[1].col, diags[1].end_col }, { 3, col, col + #"1..xs.len()" }, "diagnostic position (bytes)")
H.eq(diags[1].code, "correctness", "diagnostic code")

-- The fix is an ordinary code action (what `gra` lists).
local titles = H.code_action_titles(buf, 3)
H.ok(
  vim.tbl_contains(titles, "Refine: apply revision (fixes 1 of 1 findings)"),
  "code action listed: " .. vim.inspect(titles)
)

vim.cmd("RefineApply")
H.wait(10000, function()
  return H.text(buf) == fixed
end, "the revision to be applied; buffer is:\n" .. H.text(buf))
H.wait(5000, function()
  return #accepted > 0
end, "RefineAccepted")
H.done()
