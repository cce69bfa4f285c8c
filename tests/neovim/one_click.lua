-- :RefineNow shows the revision inline; reject leaves the buffer alone, accept applies it.
package.path = os.getenv("REFINE_TEST_DIR") .. "/?.lua;" .. package.path
local H = require("helpers")
local refine = require("refine")
local diff = require("refine.diff")
refine.setup({ notify = false })

local path = os.getenv("REFINE_WORK") .. "/sum.rs"
local code = os.getenv("REFINE_CODE")
local fixed = os.getenv("REFINE_FIXED")
local buf = H.open(path, code)
local rejected = H.record("RefineRejected")
local accepted = H.record("RefineAccepted")

local function inline_marks()
  return vim.api.nvim_buf_get_extmarks(buf, diff.ns, 0, -1, { details = true })
end

vim.cmd("1,6RefineNow")
H.wait(10000, function()
  return #inline_marks() >= 2
end, "the inline diff")
local removed, added
for _, m in ipairs(inline_marks()) do
  if m[4].line_hl_group then
    removed = m
  elseif m[4].virt_lines then
    added = m
  end
end
H.ok(removed and added, "a removed and an added line: " .. vim.inspect(inline_marks()))
H.eq(removed[4].line_hl_group, "RefineDiffDelete", "removed line highlighted")
H.eq(removed[2], 3, "on the buggy line")
H.ok(added[4].virt_lines[1][1][1]:find("0..xs.len()", 1, true), "added line shown")
vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Plug>(RefineReject)", true, false, true), "x", false)
H.wait(2000, function()
  return #rejected > 0
end, "RefineRejected")
H.eq(#inline_marks(), 0, "inline diff removed")
H.eq(H.text(buf), code, "buffer unchanged after reject")

vim.cmd("1,6RefineNow")
H.wait(10000, function()
  return #inline_marks() >= 2
end, "the inline diff again")
vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Plug>(RefineAccept)", true, false, true), "x", false)
H.wait(10000, function()
  return H.text(buf) == fixed
end, "the accepted revision; buffer is:\n" .. H.text(buf))
H.wait(2000, function()
  return #accepted > 0
end, "RefineAccepted")
H.eq(#inline_marks(), 0, "inline diff gone after accept")
H.done()
