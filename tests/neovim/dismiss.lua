-- Dismiss a finding in a real Neovim: the code actions list the three dismissals, :RefineDismiss
-- hides the finding and writes .refine/dismissed.toml, a re-review of the same code shows nothing,
-- :RefineUndismiss brings it back.
package.path = os.getenv("REFINE_TEST_DIR") .. "/?.lua;" .. package.path
local H = require("helpers")
local refine = require("refine")
refine.setup({ notify = false })

local work = os.getenv("REFINE_WORK")
-- A workspace root, so the dismissal has a home.
local marker = assert(io.open(work .. "/.refine.toml", "w"))
marker:write("")
marker:close()
local buf = H.open(work .. "/sum.rs", os.getenv("REFINE_CODE"))
local finished = H.record("RefineReviewFinished")
local dismissed = H.record("RefineDismissed")
local undismissed = H.record("RefineUndismissed")

vim.cmd("1,6Refine")
H.wait(10000, function()
  return #finished > 0
end, "RefineReviewFinished")
H.eq(#H.refine_diagnostics(buf), 1, "refine diagnostics")

local titles = H.code_action_titles(buf, 3)
H.ok(vim.tbl_contains(titles, "Refine: dismiss this finding"), "dismiss listed: " .. vim.inspect(titles))

vim.api.nvim_win_set_cursor(0, { 4, 0 })
vim.cmd("RefineDismiss")
H.wait(5000, function()
  return #dismissed > 0
end, "RefineDismissed")
H.eq(dismissed[1].hidden, 1, "hidden")
H.wait(5000, function()
  return #H.refine_diagnostics(buf) == 0
end, "the finding to be hidden")
local f = assert(io.open(work .. "/.refine/dismissed.toml"))
local toml = f:read("*a")
f:close()
H.ok(toml:find('path = "sum.rs"', 1, true) and toml:find('scope = "finding"', 1, true), "dismissed.toml:\n" .. toml)

-- The same code reviewed again: the critic reports it again, nothing is shown.
vim.cmd("1,6Refine")
H.wait(10000, function()
  return #finished > 1
end, "the second review")
H.eq(#H.refine_diagnostics(buf), 0, "refine diagnostics after the re-review")
H.ok(
  vim.iter(finished[2].notes or {}):any(function(n)
    return n:find("dismissed", 1, true) ~= nil
  end),
  "the second review says a finding was dismissed: " .. vim.inspect(finished[2].notes)
)

vim.cmd("RefineUndismiss")
H.wait(5000, function()
  return #undismissed > 0
end, "RefineUndismissed")
H.eq(undismissed[1].shown, 1, "shown again")
H.wait(5000, function()
  return #H.refine_diagnostics(buf) == 1
end, "the finding to be back")
H.done()
