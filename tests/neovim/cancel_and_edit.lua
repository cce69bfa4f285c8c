-- A review can be cancelled; a buffer edited during a review never gets a stale edit.
package.path = os.getenv("REFINE_TEST_DIR") .. "/?.lua;" .. package.path
local H = require("helpers")
local refine = require("refine")
refine.setup({ notify = false })

local path = os.getenv("REFINE_WORK") .. "/sum.rs"
local code = os.getenv("REFINE_CODE")
local buf = H.open(path, code)
local finished = H.record("RefineReviewFinished")

-- Cancel mid-review (the model takes 2 s); progress shows in the statusline meanwhile.
vim.cmd("1,6Refine")
H.wait(3000, function()
  return refine.status():find("critique", 1, true) ~= nil
end, "progress in refine.status(), got '" .. refine.status() .. "'")
vim.cmd("RefineCancel")
H.wait(5000, function()
  return #finished > 0
end, "the cancelled review to end")
H.eq(finished[1].error, "the review was cancelled", "cancelled")
H.eq(#H.refine_diagnostics(buf), 0, "no findings after cancel")

-- Edit the reviewed lines while the model works: no findings, no edit, text kept.
vim.cmd("1,6Refine")
vim.wait(300)
vim.api.nvim_buf_set_lines(buf, 3, 4, false, { "    // edited while the model was thinking" })
local edited = H.text(buf)
H.wait(5000, function()
  return #finished > 1
end, "the second review to end")
H.eq(finished[2].error, "the review was cancelled", "cancelled by the edit")
vim.cmd("RefineApply")
vim.wait(500)
H.eq(H.text(buf), edited, "no stale edit applied")
H.eq(#H.refine_diagnostics(buf), 0, "no findings on edited lines")
H.done()
