-- Each command does what it says: :RefineApply applies the review under the cursor,
-- :RefineCancel cancels the review of the current buffer, a review that cannot start says why
-- in the status, and the inline diff goes away when the buffer is edited.
package.path = os.getenv("REFINE_TEST_DIR") .. "/?.lua;" .. package.path
local H = require("helpers")
local refine = require("refine")
refine.setup({ notify = false })

local notes = {}
local notify = vim.notify
vim.notify = function(msg, level)
  table.insert(notes, msg)
  return notify(msg, level)
end

local work = os.getenv("REFINE_WORK")
local code = os.getenv("REFINE_CODE")
local fixed = os.getenv("REFINE_FIXED")
local tail = "\nfn other() -> i32 {\n    2\n}\n"
local buf = H.open(work .. "/sum.rs", code .. tail)
local finished = H.record("RefineReviewFinished")

-- A revision for lines 1-6; the cursor on line 9 (outside the review): nothing is applied.
vim.cmd("1,6Refine")
H.wait(10000, function()
  return #finished > 0
end, "the review to end")
H.ok(finished[1].revision, "a revision is offered")
vim.api.nvim_win_set_cursor(0, { 9, 0 })
vim.cmd("RefineApply")
H.wait(3000, function()
  return vim.tbl_contains(notes, "refine: no revision under the cursor")
end, "'no revision under the cursor'")
H.eq(H.text(buf), code .. tail, "nothing applied from outside the review")
-- On line 4, inside it: applied.
vim.api.nvim_win_set_cursor(0, { 4, 0 })
vim.cmd("RefineApply")
H.wait(5000, function()
  return H.text(buf) == fixed .. tail
end, "the revision under the cursor to be applied")

-- A slow review in this buffer; :RefineCancel in another buffer leaves it running.
vim.cmd("1,6Refine")
vim.cmd("enew")
local other = vim.api.nvim_get_current_buf()
vim.cmd("RefineCancel")
H.ok(vim.tbl_contains(notes, "refine: no review running in this buffer"), "nothing to cancel here")
vim.wait(300)
H.eq(#finished, 1, "the review elsewhere still runs")
vim.api.nvim_set_current_buf(buf)
vim.cmd("RefineCancel")
H.wait(5000, function()
  return #finished > 1
end, "the cancelled review to end")
H.eq(finished[2].error, "the review was cancelled", "cancelled from its own buffer")
vim.api.nvim_buf_delete(other, { force = true })

-- A review that cannot start (a secrets file) does not leave the status at "reviewing…".
local env = H.open(work .. "/.env", "TOKEN=abc\n")
vim.cmd("1,1Refine")
H.wait(5000, function()
  return refine.status():find("secrets file", 1, true) ~= nil
end, "the status to say why, got '" .. refine.status() .. "'")
vim.api.nvim_buf_delete(env, { force = true })

-- The inline diff is dropped when the buffer changes (the revision no longer fits it).
vim.api.nvim_set_current_buf(buf)
vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(code .. tail, "\n", { plain = true }))
vim.cmd("1,6RefineNow")
local ns = require("refine.diff").ns
H.wait(10000, function()
  return #vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, {}) > 0
end, "the inline diff")
vim.api.nvim_buf_set_lines(buf, 8, 9, false, { "    3" })
vim.cmd("doautocmd TextChanged")
H.wait(3000, function()
  return #vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, {}) == 0
end, "the inline diff to go with the edit")
H.done()
